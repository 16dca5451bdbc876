"""DQN's hand-written gradient is the gradient of its loss.

`DQNAgent.loss_and_grads` computes the TD loss's gradient without autograd when the
network is a plain Linear/ReLU MLP (`MLPGrad`). The law: for any batch, loss type,
double-Q setting and network shape, the loss and every parameter's `.grad` equal what
autograd gives for `DQNAgent.loss` (`QAgent.loss_and_grads`, the generic path). The two
run the same kernels, so on this machine they agree to the last bit; the tolerance only
allows another BLAS to order a sum differently. Networks with mode-dependent layers
(dropout, LayerNorm) must keep autograd.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlbench.config import DQNConfig
from rlbench.trainers.dqn_torch import DQNAgent
from rlbench.trainers.q_learning import QAgent
from rlbench.types import Batch

pytestmark = pytest.mark.law

CPU = torch.device("cpu")


def _batch(rng: np.random.Generator, n: int, obs_dim: int, n_actions: int) -> Batch:
    # Large rewards and observations put TD errors on both sides of Huber's |d| = 1 kink.
    return Batch(
        obs=(3 * rng.standard_normal((n, obs_dim))).astype(np.float32),
        action=rng.integers(0, n_actions, n),
        reward=(3 * rng.standard_normal(n)).astype(np.float32),
        next_obs=rng.standard_normal((n, obs_dim)).astype(np.float32),
        terminated=rng.random(n) < 0.3,
        truncated=np.zeros(n, bool),
    )


def _grads(agent: DQNAgent, how, tb) -> tuple[float, list[torch.Tensor]]:
    loss = how(tb)
    return loss.item(), [p.grad.clone() for p in agent.online.parameters()]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 64),
    obs_dim=st.integers(1, 6),
    n_actions=st.integers(2, 5),
    hidden=st.lists(st.integers(1, 48), min_size=1, max_size=3),
    loss=st.sampled_from(["mse", "huber"]),
    double_q=st.booleans(),
)
def test_dqn_hand_written_gradient_is_autograd_of_the_loss(
    seed: int, n: int, obs_dim: int, n_actions: int, hidden: list[int], loss: str, double_q: bool,
) -> None:
    torch.manual_seed(seed)
    config = DQNConfig(hidden_sizes=tuple(hidden), loss=loss, double_q=double_q, gamma=0.9)
    agent = DQNAgent(config, (obs_dim,), n_actions, CPU)
    with torch.no_grad():  # a target that differs from the online net, as mid-training
        for p in agent.target.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert agent._mlp_grad is not None, "a plain Linear/ReLU DQN must take the fast path"
    tb = agent._to_tensors(_batch(np.random.default_rng(seed), n, obs_dim, n_actions), CPU)

    want_loss, want = _grads(agent, lambda b: QAgent.loss_and_grads(agent, b), tb)
    got_loss, got = _grads(agent, agent.loss_and_grads, tb)

    assert got_loss == pytest.approx(want_loss, rel=1e-6, abs=1e-7), "loss differs from loss()"
    names = [name for name, _ in agent.online.named_parameters()]
    for name, g, w in zip(names, got, want, strict=True):
        assert torch.allclose(g, w, rtol=1e-5, atol=1e-6), (
            f"{name}: the hand-written gradient is not autograd's gradient of the {loss} TD "
            f"loss (max |diff| {(g - w).abs().max().item():.3g})")


@pytest.mark.parametrize("change", [{"dropout": 0.1}, {"layer_norm": True}])
def test_dqn_with_mode_dependent_layers_keeps_autograd(change: dict) -> None:
    agent = DQNAgent(DQNConfig(**change), (4,), 2, CPU)
    assert agent._mlp_grad is None, f"{change}: MLPGrad knows only Linear and ReLU"
    # The autograd path reports the batch's TD loss (same dropout draws: same torch seed).
    tb = agent._to_tensors(_batch(np.random.default_rng(0), 16, 4, 2), CPU)
    torch.manual_seed(1)
    want = agent.loss(tb).item()
    torch.manual_seed(1)
    got = agent.loss_and_grads(tb).item()
    assert got == pytest.approx(want, rel=1e-6) and got > 0, (
        f"{change}: the update reports {got}, not the batch's loss {want}")


def test_dqn_fast_path_follows_replaced_modules() -> None:
    # load_weights may give the agent new parameter tensors; the gradient must land on the
    # parameters the optimizer now steps, or the update silently does nothing.
    agent = DQNAgent(DQNConfig(hidden_sizes=(8,)), (4,), 2, CPU)
    other = DQNAgent(DQNConfig(hidden_sizes=(8,)), (4,), 2, CPU)
    agent.load_weights(other.get_weights())
    before = [p.detach().clone() for p in agent.online.parameters()]
    agent.update(_batch(np.random.default_rng(0), 16, 4, 2))
    moved = [not torch.equal(b, p) for b, p in zip(before, agent.online.parameters())]
    assert all(moved), f"parameters not updated after load_weights: {moved}"
