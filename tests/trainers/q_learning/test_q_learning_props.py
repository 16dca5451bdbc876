"""Hypothesis laws of the shared DQN/IQN machinery (target updates, schedules, clipping,
the quantile Huber loss, batch conversion)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from rlbench.config import DQNConfig, IQNConfig
from rlbench.schedules import decay_steps, lr_factor
from rlbench.trainers.dqn_torch import DQNAgent
from rlbench.trainers.iqn_torch import IQNAgent, quantile_huber_loss
from rlbench.trainers.q_learning import (
    TensorBatch,
    hard_update,
    make_epsilon_schedule,
    soft_update,
)
from rlbench.types import Batch

pytestmark = pytest.mark.law

CPU = torch.device("cpu")
shapes = st.lists(st.lists(st.integers(1, 5), min_size=0, max_size=3).map(tuple),
                  min_size=1, max_size=4)


def _module(shape_list: list[tuple[int, ...]], seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    module = nn.ParameterList([nn.Parameter(torch.randn(s, generator=gen)) for s in shape_list])
    return module


@given(shape_list=shapes, tau=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_soft_update_is_the_convex_combination(shape_list, tau: float, seed: int) -> None:
    online, target = _module(shape_list, seed), _module(shape_list, seed + 1)
    expected = [(tau * o.detach().double() + (1 - tau) * t.detach().double())
                for o, t in zip(online.parameters(), target.parameters())]
    before = [o.detach().clone() for o in online.parameters()]
    soft_update(target, online, tau)
    for got, want in zip(target.parameters(), expected):
        # exact up to float32 rounding of the two products and the sum
        torch.testing.assert_close(got.detach().double(), want, rtol=1e-6, atol=1e-6)
    for o, b in zip(online.parameters(), before):
        assert torch.equal(o, b)  # the online net is never touched
    if tau == 1.0:
        assert all(torch.equal(t, o) for t, o in zip(target.parameters(), online.parameters()))


@pytest.mark.parametrize("how", ["hard", "soft"])
def test_target_updates_copy_buffers_from_the_online_net(how: str) -> None:
    # Buffers (e.g. BatchNorm running statistics) are state, not parameters: a target that
    # keeps its own normalises next_obs with statistics the online net no longer has.
    online, target = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    online.train()(torch.randn(64, 3) * 5 + 2)  # moves online's running mean and variance
    hard_update(target, online) if how == "hard" else soft_update(target, online, 0.1)
    for (name, t), o in zip(target.named_buffers(), online.buffers()):
        assert torch.equal(t, o), f"{how} update: target buffer {name} is not the online one"


def _batch(n: int, seed: int, scale: float = 1.0) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        obs=(scale * rng.standard_normal((n, 4))).astype(np.float32),
        action=rng.integers(0, 2, n),
        reward=(scale * rng.standard_normal(n)).astype(np.float32),
        next_obs=(scale * rng.standard_normal((n, 4))).astype(np.float32),
        terminated=rng.random(n) < 0.3,
        truncated=np.zeros(n, bool),
    )


@given(interval=st.integers(1, 6), n_updates=st.integers(1, 14))
def test_hard_update_copies_only_on_schedule(interval: int, n_updates: int) -> None:
    torch.manual_seed(0)
    agent = DQNAgent(DQNConfig(target_update_interval=interval, learning_rate=1e-2), (4,), 2, CPU)
    for k in range(1, n_updates + 1):
        before = [t.clone() for t in agent.target.parameters()]
        agent.update(_batch(16, k))
        changed = not all(torch.equal(b, t) for b, t in zip(before, agent.target.parameters()))
        assert changed == (k % interval == 0)
        if changed:
            assert all(torch.equal(t, o) for t, o in zip(agent.target.parameters(),
                                                         agent.online.parameters()))


@given(interval=st.integers(2, 6), n_updates=st.integers(1, 14))
def test_soft_update_moves_the_target_only_on_schedule(interval: int, n_updates: int) -> None:
    torch.manual_seed(0)
    agent = DQNAgent(DQNConfig(target_update="soft", tau=0.5, target_update_interval=interval,
                               learning_rate=1e-2), (4,), 2, CPU)
    for k in range(1, n_updates + 1):
        before = [t.clone() for t in agent.target.parameters()]
        agent.update(_batch(16, k))
        changed = not all(torch.equal(b, t) for b, t in zip(before, agent.target.parameters()))
        assert changed == (k % interval == 0), (
            f"update {k}: target {'moved' if changed else 'did not move'} with interval {interval}")


def test_load_weights_leaves_no_optimizer_state_behind() -> None:
    # After load_weights(W) the agent must learn exactly as a fresh agent given W: Adam
    # moments estimated for the overwritten weights would bend the next steps.
    torch.manual_seed(0)
    config = DQNConfig(learning_rate=1e-2, hidden_sizes=(16,), lr_schedule="constant",
                       target_update_interval=10**6)  # no schedule: only the state differs
    used, fresh = DQNAgent(config, (4,), 2, CPU), DQNAgent(config, (4,), 2, CPU)
    for k in range(5):
        used.update(_batch(16, 100 + k))
    weights = fresh.get_weights()
    used.load_weights(weights)
    fresh.load_weights(weights)
    for k in range(3):
        used.update(_batch(16, k))
        fresh.update(_batch(16, k))
    for (name, a), b in zip(used.online.named_parameters(), fresh.online.parameters()):
        assert torch.equal(a, b), f"{name}: after load_weights the agent learns unlike a fresh one"


@given(
    total=st.integers(1, 5000), frac=st.floats(0.0, 1.0),
    start=st.floats(0.0, 1.0), end_frac=st.floats(0.0, 1.0),
)
def test_epsilon_schedule_monotone_bounded_and_reaches_min(total, frac, start, end_frac) -> None:
    end = start * end_frac
    config = DQNConfig(total_steps=total, exploration_fraction=frac, epsilon_start=start,
                       epsilon_min=end)
    epsilon = make_epsilon_schedule(config)
    steps = np.unique(np.linspace(0, total, 60).astype(int))
    values = [epsilon(int(s)) for s in steps]
    assert all(end - 1e-12 <= v <= start + 1e-12 for v in values)
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert epsilon(decay_steps(total, frac)) == end
    assert epsilon(total) == end


@given(max_norm=st.floats(1e-4, 10.0), scale=st.floats(0.1, 100.0), seed=st.integers(0, 100))
def test_post_clip_grad_norm_at_most_max(max_norm: float, scale: float, seed: int) -> None:
    torch.manual_seed(seed)
    agent = DQNAgent(DQNConfig(max_grad_norm=max_norm), (4,), 2, CPU)
    info = agent.update(_batch(32, seed, scale))
    norm = torch.linalg.vector_norm(
        torch.stack([torch.linalg.vector_norm(p.grad) for p in agent.online.parameters()]))
    assert norm.item() <= max_norm * (1 + 1e-5)
    if info["grad_norm"] <= max_norm:  # unclipped gradients are left alone
        assert norm.item() == np.float32(info["grad_norm"]) or abs(
            norm.item() - info["grad_norm"]) <= 1e-5 * info["grad_norm"]


@given(kind=st.sampled_from(["constant", "linear", "cosine"]), total=st.integers(1, 30),
       final=st.floats(0.0, 1.0))
def test_lr_equals_schedule_at_every_update(kind: str, total: int, final: float) -> None:
    config = DQNConfig(total_steps=total, learning_starts=1, train_frequency=1, lr_schedule=kind,
                       lr_final_fraction=final, learning_rate=3e-3)
    torch.manual_seed(0)
    agent = DQNAgent(config, (4,), 2, CPU)
    for k in range(total + 3):  # past the planned updates the final LR holds
        info = agent.update(_batch(8, k))
        want = 3e-3 * lr_factor(kind, k, total, final)
        assert abs(info["lr"] - want) <= 1e-15 + 1e-12 * want


def _reference_quantile_huber(pred, taus, target, kappa) -> float:
    """Brute force, loop by loop, in float64: eq. (3)-(4) of Dabney et al. (2018)."""
    b, n = pred.shape
    total = 0.0
    for k in range(b):
        per_sample = 0.0
        for i in range(n):
            acc = 0.0
            for j in range(target.shape[1]):
                d = float(target[k, j]) - float(pred[k, i])
                huber = 0.5 * d * d if abs(d) <= kappa else kappa * (abs(d) - 0.5 * kappa)
                acc += abs(float(taus[k, i]) - (1.0 if d < 0 else 0.0)) * huber / kappa
            per_sample += acc / target.shape[1]
        total += per_sample
    return total / b


floats = st.floats(-5.0, 5.0, allow_nan=False, width=32)


@given(b=st.integers(1, 3), n=st.integers(1, 4), n_t=st.integers(1, 4),
       kappa=st.floats(0.1, 3.0), data=st.data())
def test_quantile_huber_loss_matches_reference_and_is_zero_only_at_equality(
    b, n, n_t, kappa, data
) -> None:
    pred = np.array(data.draw(st.lists(floats, min_size=b * n, max_size=b * n))).reshape(b, n)
    target = np.array(data.draw(st.lists(floats, min_size=b * n_t, max_size=b * n_t))
                      ).reshape(b, n_t)
    taus = np.array(data.draw(st.lists(st.floats(0.01, 0.99), min_size=b * n, max_size=b * n))
                    ).reshape(b, n)
    t = [torch.tensor(x, dtype=torch.float64) for x in (pred, taus, target)]
    loss = quantile_huber_loss(*t, kappa=kappa).item()
    assert loss >= 0.0
    assert np.isclose(loss, _reference_quantile_huber(pred, taus, target, kappa), rtol=1e-9,
                      atol=1e-12)
    equal = bool((pred[:, :, None] == target[:, None, :]).all())
    assert (loss == 0.0) == equal
    # at equality (every quantile equals every target sample) the loss is exactly zero
    same = torch.full((b, n), 1.5, dtype=torch.float64)
    assert quantile_huber_loss(same, t[1], same[:, :1].expand(b, n_t), kappa).item() == 0.0


obs_dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int32])
act_dtypes = st.sampled_from([np.int8, np.uint8, np.int32, np.int64])
rew_dtypes = st.sampled_from([np.float16, np.float32, np.float64, np.int16, np.int64])
flag_dtypes = st.sampled_from([np.bool_, np.uint8, np.int64, np.float32])


@given(obs_t=obs_dtypes, act_t=act_dtypes, rew_t=rew_dtypes, flag_t=flag_dtypes,
       algo=st.sampled_from(["dqn", "iqn"]), seed=st.integers(0, 1000))
def test_any_sane_numpy_dtypes_give_the_float32_loss(obs_t, act_t, rew_t, flag_t, algo, seed):
    """Skipping the conversion (fault batch-not-on-device) breaks this law too, but hypothesis
    then shrinks for minutes, so the kill matrix uses the unit test as the fast detector."""
    rng = np.random.default_rng(seed)
    n = 16
    # values exactly representable in every candidate dtype (small integers)
    base = Batch(rng.integers(-3, 4, (n, 4)), rng.integers(0, 2, n), rng.integers(-2, 3, n),
                 rng.integers(-3, 4, (n, 4)), rng.random(n) < 0.3, np.zeros(n, bool))
    odd = Batch(base.obs.astype(obs_t), base.action.astype(act_t), base.reward.astype(rew_t),
                base.next_obs.astype(obs_t), base.terminated.astype(flag_t), base.truncated)
    reference = TensorBatch(
        torch.tensor(base.obs, dtype=torch.float32), torch.tensor(base.action),
        torch.tensor(base.reward, dtype=torch.float32),
        torch.tensor(base.next_obs, dtype=torch.float32), torch.tensor(base.terminated))
    cls, config = (DQNAgent, DQNConfig()) if algo == "dqn" else (IQNAgent, IQNConfig())
    torch.manual_seed(0)
    agent = cls(config, (4,), 2, CPU)
    torch.manual_seed(1)  # IQN samples quantile fractions: same fractions for both losses
    got = agent.loss(agent._to_tensors(odd, agent.device))
    torch.manual_seed(1)
    want = agent.loss(reference)
    assert got.dtype == torch.float32
    assert got.item() == want.item()


@pytest.mark.parametrize("algo,loss", [("dqn", "mse"), ("dqn", "huber"), ("iqn", None)])
@given(seed=st.integers(0, 2**16))
def test_one_small_update_lowers_the_loss_on_its_batch(algo: str, loss: str | None, seed: int
                                                        ) -> None:
    # Gradient descent, first order: Adam's first step moves every parameter against its
    # gradient's sign, so at lr 1e-5 the loss on the same batch (same target net, same
    # quantile fractions) must drop by ~lr·|grad|_1 >> float32 noise. A step along anything
    # but the loss's own gradient (a sign flip in DQN's hand-written gradient, a dropped
    # optimizer step) leaves it or raises it. (A sign flip of loss() itself is
    # self-consistent here; the loss-value laws in test_td_target_laws.py catch that.)
    torch.manual_seed(seed)
    common = dict(learning_rate=1e-5, target_update_interval=10**6, hidden_sizes=(32, 32))
    agent = (DQNAgent(DQNConfig(loss=loss, **common), (4,), 2, CPU) if algo == "dqn"
             else IQNAgent(IQNConfig(**common), (4,), 2, CPU))
    batch = _batch(32, seed, scale=3.0)
    tb = agent._to_tensors(batch, CPU)

    def loss_now() -> float:
        torch.manual_seed(seed + 1)  # IQN: the same taus in every evaluation and the update
        with torch.no_grad():
            return agent.loss(tb).item()

    before = loss_now()
    torch.manual_seed(seed + 1)
    agent.update(batch)
    after = loss_now()
    assert after < before, f"{algo} ({loss or 'quantile huber'}): one update did not lower " \
                           f"the loss on its own batch ({before:.6g} -> {after:.6g})"
