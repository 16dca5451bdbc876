"""Shared DQN/IQN machinery: conversion, weight copy, modes, target updates, schedules.

Several tests here are the fault kill-matrix detectors of the PyTorch trainers (named in
rlbench/faults/catalogue.py); each says which fault it catches.
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

import torch

from rlbench.config import DQNConfig, IQNConfig
from rlbench.schedules import decay_steps, lr_factor
from rlbench.trainers.dqn_torch import DQNAgent
from rlbench.trainers.iqn_torch import IQNAgent
from rlbench.trainers.q_learning import (
    NumpyMLP,
    QAgent,
    batch_to_tensors,
    fit,
    make_agent,
    make_epsilon_schedule,
    planned_updates,
    resolve_device,
)
from rlbench.types import Batch

CPU = torch.device("cpu")
AGENTS = [(DQNAgent, DQNConfig), (IQNAgent, IQNConfig)]


def _batch(n: int = 32, seed: int = 0, obs_dim: int = 4) -> Batch:
    rng = np.random.default_rng(seed)
    return Batch(
        obs=rng.standard_normal((n, obs_dim)).astype(np.float32),
        action=rng.integers(0, 2, n),
        reward=rng.standard_normal(n).astype(np.float32),
        next_obs=rng.standard_normal((n, obs_dim)).astype(np.float32),
        terminated=rng.random(n) < 0.2,
        truncated=np.zeros(n, bool),
    )


def _agent(cls=DQNAgent, config_cls=DQNConfig, **changes) -> QAgent:
    torch.manual_seed(0)
    return cls(config_cls(**changes), (4,), 2, CPU)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


# -- batch conversion (detector: batch-not-on-device) ------------------------------------------
@pytest.mark.detects("batch-not-on-device")
def test_batch_to_tensors_dtypes_and_device() -> None:
    """Detector for batch-not-on-device: whatever numpy dtypes come in, the tensors are
    float32 / int64 / bool on the model's device."""
    b = _batch()
    odd = Batch(b.obs.astype(np.float64), b.action.astype(np.int32), b.reward.astype(np.float64),
                b.next_obs.astype(np.float64), b.terminated.astype(np.uint8), b.truncated)
    agent = _agent()
    tb = agent._to_tensors(odd, agent.device)
    assert [t.dtype for t in tb] == [torch.float32, torch.int64, torch.float32, torch.float32,
                                     torch.bool]
    assert all(t.device == agent.device for t in tb)
    assert tb.action.shape == (32,) and tb.terminated.shape == (32,)
    np.testing.assert_array_equal(tb.terminated.numpy(), b.terminated)


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("action", np.zeros(32, np.float32), "integer action"),
        ("terminated", np.full(32, 0.5), "0/1"),
        ("reward", np.zeros(31, np.float32), "entries"),
        ("obs", np.array(["a"] * 32), "numbers"),
        ("next_obs", np.zeros((32, 3), np.float32), "obs/next_obs: need equal shapes"),
        ("next_obs", np.float32(0.0), "obs/next_obs: need equal shapes"),
        ("obs", np.float32(0.0), "obs/next_obs: need equal shapes"),
    ],
)
def test_batch_to_tensors_rejects_bad_batches(field: str, value: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        batch_to_tensors(_batch()._replace(**{field: value}), CPU)


def test_batch_to_tensors_takes_a_batch_of_one() -> None:
    one = Batch(*(np.asarray(v)[:1] for v in _batch()))
    assert batch_to_tensors(one, CPU).obs.shape == (1, 4)


# -- weight copy (detector: stale-optimizer) ---------------------------------------------------
@pytest.mark.detects("stale-optimizer")
@pytest.mark.parametrize("cls, config_cls", AGENTS)
def test_load_weights_rebinds_optimizer(cls, config_cls) -> None:
    """Detector for stale-optimizer: after a weight copy the optimizer owns exactly the
    model's parameters, and one update step changes the model."""
    agent = _agent(cls, config_cls)
    other = _agent(cls, config_cls, seed=1)
    torch.manual_seed(1)
    other.online.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
    agent.load_weights(other.get_weights())
    assert _same(_params(agent.online), _params(other.online))
    assert _same(_params(agent.target), _params(agent.online))
    assert {id(p) for p in agent.optimizer_params()} == {id(p) for p in agent.online.parameters()}
    before = _params(agent.online)
    agent.update(_batch())
    assert not _same(before, _params(agent.online)), "an update after load_weights changed nothing"


def test_get_weights_are_detached_cpu_copies() -> None:
    agent = _agent()
    weights = agent.get_weights()
    next(iter(weights.values())).add_(1.0)
    assert _same(_params(agent.online), [p for p in _agent().online.parameters()])


# -- train/eval modes (detector: eval-mode-training) --------------------------------------------
@pytest.mark.detects("eval-mode-training")
@pytest.mark.parametrize("cls, config_cls", AGENTS)
def test_update_runs_in_train_mode_and_acting_in_eval_mode(cls, config_cls) -> None:
    """Detector for eval-mode-training (the SB3 test_train_eval_mode idea): with dropout and
    LayerNorm, acting is deterministic (eval mode) and the update runs in train mode even
    right after acting."""
    agent = _agent(cls, config_cls, dropout=0.5, layer_norm=True)
    seen: list[bool] = []
    dropout = next(m for m in agent.online.modules() if isinstance(m, torch.nn.Dropout))
    dropout.register_forward_hook(lambda m, i, o: seen.append(m.training))
    obs = np.random.default_rng(0).standard_normal((16, 4)).astype(np.float32)
    if cls is DQNAgent:  # IQN samples quantile fractions, so only DQN is bit-reproducible
        np.testing.assert_array_equal(agent.q_values(obs), agent.q_values(obs))
    agent.greedy_action(obs[0])
    assert seen and not any(seen), "acting ran with dropout active"
    seen.clear()
    agent.update(_batch())
    assert seen and all(seen), "the update ran in eval mode"


# -- target network (detector: target-not-updated) ----------------------------------------------
@pytest.mark.detects("target-not-updated")
@pytest.mark.parametrize("cls, config_cls", AGENTS)
def test_hard_target_update_copies_on_schedule(cls, config_cls) -> None:
    """Detector for target-not-updated: the target equals the online net at the start,
    differs after learning, and is copied exactly every target_update_interval updates."""
    agent = _agent(cls, config_cls, target_update="hard", target_update_interval=3,
                   learning_rate=1e-2)
    assert _same(_params(agent.target), _params(agent.online))
    for k in range(1, 7):
        agent.update(_batch(seed=k))
        equal = _same(_params(agent.target), _params(agent.online))
        assert equal == (k % 3 == 0), f"after update {k}: target == online is {equal}"


def test_soft_target_update_moves_target_and_tau_zero_freezes_it() -> None:
    agent = _agent(target_update="soft", tau=0.5, target_update_interval=1, learning_rate=1e-2)
    start = _params(agent.target)
    agent.update(_batch())
    assert not _same(start, _params(agent.target))
    assert not _same(_params(agent.target), _params(agent.online))  # halfway, not a copy
    frozen = _agent(target_update="soft", tau=0.0, target_update_interval=1, learning_rate=1e-2)
    start = _params(frozen.target)
    for k in range(5):
        frozen.update(_batch(seed=k))
    assert _same(start, _params(frozen.target))
    assert not _same(start, _params(frozen.online))


# -- schedules (detectors: epsilon-not-decayed, no-lr-schedule) ----------------------------------
@pytest.mark.detects("epsilon-not-decayed")
def test_epsilon_schedule_reaches_min_at_configured_step() -> None:
    """Detector for epsilon-not-decayed: the schedule the training loop uses starts at
    epsilon_start and reaches epsilon_min at exploration_fraction · total_steps."""
    config = DQNConfig(total_steps=1000, exploration_fraction=0.3, epsilon_start=1.0,
                       epsilon_min=0.05)
    epsilon = make_epsilon_schedule(config)
    assert epsilon(0) == 1.0
    assert epsilon(150) == pytest.approx(0.525)
    assert epsilon(decay_steps(1000, 0.3)) == 0.05
    assert epsilon(1000) == 0.05


@pytest.mark.detects("no-lr-schedule")
def test_update_follows_lr_schedule() -> None:
    """Detector for no-lr-schedule: every update uses learning_rate × the schedule factor
    at its index, and the optimizer holds the next one afterwards."""
    config = DQNConfig(total_steps=40, learning_starts=1, train_frequency=1,
                       lr_schedule="linear", lr_final_fraction=0.1, learning_rate=1e-3)
    agent = DQNAgent(config, (4,), 2, CPU)
    total = planned_updates(config)
    assert total == 40
    for k in range(total):
        info = agent.update(_batch(seed=k))
        assert info["lr"] == pytest.approx(1e-3 * lr_factor("linear", k, total, 0.1), rel=1e-12)
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4, rel=1e-12)


# -- gradient clipping (detector: no-grad-clipping) ----------------------------------------------
@pytest.mark.detects("no-grad-clipping")
@pytest.mark.parametrize("cls, config_cls", AGENTS)
def test_update_clips_global_grad_norm(cls, config_cls) -> None:
    """Detector for no-grad-clipping: with a tiny max_grad_norm the gradients the optimizer
    stepped with have global norm <= max_grad_norm, while the reported pre-clip norm is larger."""
    agent = _agent(cls, config_cls, max_grad_norm=1e-3)
    info = agent.update(_batch())
    grads = [p.grad for p in agent.online.parameters() if p.grad is not None]
    clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert info["grad_norm"] > 1e-3
    assert clipped.item() <= 1e-3 * (1 + 1e-5)


# -- acting ----------------------------------------------------------------------------------------
def test_numpy_actor_matches_torch_greedy_after_updates_and_loads() -> None:
    """The numpy fast path sees in-place optimizer steps and weight loads (no stale actor)."""
    agent = _agent(learning_rate=0.05)
    assert isinstance(agent._greedy_one, NumpyMLP)
    obs = np.random.default_rng(1).standard_normal((64, 4)).astype(np.float32)

    def agree() -> None:
        fast = np.array([agent.greedy_action(o) for o in obs])
        np.testing.assert_array_equal(fast, agent.greedy_actions(obs))

    agree()
    for k in range(20):
        agent.update(_batch(seed=k))
    agree()
    agent.load_weights(_agent(seed=3, learning_rate=0.05).get_weights())
    agree()


def test_act_explores_with_probability_epsilon() -> None:
    agent = _agent()
    rng = np.random.default_rng(0)
    obs = np.zeros(4, np.float32)
    greedy = agent.greedy_action(obs)
    assert all(agent.act(obs, 0.0, rng) == greedy for _ in range(50))
    random_actions = [agent.act(obs, 1.0, rng) for _ in range(400)]
    assert 0.4 < np.mean(random_actions) < 0.6


def test_iqn_q_values_average_k_quantiles() -> None:
    agent = _agent(IQNAgent, IQNConfig, k_quantiles=4096)
    obs = np.zeros((3, 4), np.float32)
    q = agent.q_values(obs)
    assert q.shape == (3, 2)
    with torch.no_grad():  # the mean over many quantiles ≈ the integral over tau in (0, 1)
        taus = torch.linspace(0.0005, 0.9995, 1000)[None].expand(3, -1)
        integral = agent.online(torch.zeros(3, 4), taus).mean(1).numpy()
    np.testing.assert_allclose(q, integral, atol=2e-3)


# -- construction and the loop -------------------------------------------------------------------
def test_resolve_device() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"gamma": 1.5}, "gamma"), ({"target_update": "sometimes"}, "target_update"),
        ({"loss": "l1"}, "loss"), ({"batch_size": 0}, "batch_size"),
        ({"epsilon_min": 0.9, "epsilon_start": 0.5}, "epsilon_min"),
        ({"lr_schedule": "step"}, "lr_schedule"), ({"hidden_sizes": ()}, "hidden_sizes"),
        ({"stall_timeout_s": -1.0}, "stall_timeout_s"),
        ({"stall_timeout_s": float("nan")}, "stall_timeout_s"),
    ],
)
def test_qlearning_config_rejects_bad_values(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DQNConfig(**changes)


def test_iqn_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="kappa"):
        IQNConfig(kappa=0.0)
    with pytest.raises(ValueError, match="n_cos"):
        IQNConfig(n_cos=0)


def test_make_agent_rejects_continuous_actions() -> None:
    env = gym.make("Pendulum-v1")
    with pytest.raises(ValueError, match="Discrete"):
        make_agent(DQNConfig(env_id="Pendulum-v1"), env, CPU)


TINY = dict(env_id="CartPole-v1", total_steps=600, learning_starts=200, train_frequency=2,
            batch_size=32, eval_interval=300, eval_episodes=2, log_interval=100)


def test_fit_progress_lines_fall_on_log_points_and_the_last_shows_the_final_step(
        tmp_path, capsys) -> None:
    """The status line (stderr, at most one per 2 s) is written only at log_interval steps,
    the first at the first log point, and always at the end, even within 2 s of the last."""
    import re

    config = DQNConfig(**(TINY | dict(total_steps=650)))  # the end is not a log point
    fit(config, DQNAgent, "dqn", tmp_path, progress=True)
    steps = [int(s) for s in re.findall(r"(\d+)/650 steps", capsys.readouterr().err)]
    assert steps and steps[0] == config.log_interval, steps
    assert steps[-1] == config.total_steps, f"no final progress line: {steps}"
    assert all(s % config.log_interval == 0 for s in steps[:-1]), steps


def test_a_cpu_agent_sets_the_process_torch_threads() -> None:
    """config.torch_threads is the CPU agent's thread count (one thread by default: on a
    busy small box a thread pool makes a small-MLP update slower)."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _agent(torch_threads=1)
        assert torch.get_num_threads() == 1
        _agent(torch_threads=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("cls, config_cls", AGENTS)
def test_fit_same_seed_gives_identical_returns(cls, config_cls, tmp_path) -> None:
    """Determinism: same seed on the same machine → identical summary returns and losses."""
    def losses(seed: int, out) -> tuple[dict, list[float]]:
        summary = fit(config_cls(seed=seed, **TINY), cls, "x", out, progress=False)[0]
        lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
        return summary, [m["loss"] for m in lines if "loss" in m]

    (first, loss_a), (second, loss_b) = losses(3, tmp_path / "a"), losses(3, tmp_path / "b")
    assert first["eval_history"] == second["eval_history"]
    assert loss_a == loss_b and len(loss_a) == 5  # train lines at steps 200..600
    assert losses(4, tmp_path / "c")[1] != loss_a  # the seed matters


def test_fit_summary_counts_updates_and_buffer(tmp_path) -> None:
    config = DQNConfig(**TINY)
    summary, agent = fit(config, DQNAgent, "dqn", tmp_path, progress=False)
    assert summary["updates"] == agent.updates == planned_updates(config) == 201
    assert summary["buffer"]["size"] == 600 and summary["buffer"]["zero_obs_fraction"] == 0.0
    assert [e["step"] for e in summary["eval_history"]] == [300, 600]
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["updates"] == 201 and saved["final_eval_return"] == summary["final_eval_return"]
    assert saved["final_epsilon"] == config.epsilon_min
