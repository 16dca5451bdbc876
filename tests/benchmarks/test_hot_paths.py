"""pytest-benchmark micro-benchmarks of the hot paths: buffer sample, act, update.

The default run (pyproject addopts: ``--benchmark-disable``) calls each benchmarked function
once, so these stay working and their results are still checked. Time them with
``pytest tests/benchmarks --benchmark-enable`` (add ``--benchmark-autosave`` and later
``--benchmark-compare`` to compare two checkouts). Sizes are small so the default run takes
seconds; the asv suites in benchmarks/ time realistic sizes.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlbench.buffers import ReplayBuffer

OBS_DIM = 4  # CartPole


def _transitions(n: int, obs_dim: int = OBS_DIM, action_shape: tuple[int, ...] = (), seed: int = 0):
    """`n` valid transitions as add_batch keyword arrays."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n + 1, obs_dim)).astype(np.float32)
    if action_shape == ():
        action = rng.integers(0, 2, n)
    else:
        action = rng.uniform(-1, 1, (n, *action_shape)).astype(np.float32)
    return dict(obs=obs[:-1], action=action, reward=rng.standard_normal(n).astype(np.float32),
                next_obs=obs[1:], terminated=rng.random(n) < 0.05, truncated=np.zeros(n, bool))


# -- buffer sample ---------------------------------------------------------------------------
def _filled(cls, capacity: int = 1_000, stored: int = 600):
    buf = cls(capacity, (OBS_DIM,))
    data = _transitions(stored)
    buf.add_batch(**data)
    return buf, data


def _assert_rows_stored(batch, data) -> None:
    """Every sampled obs is one of the stored obs (samples come from filled slots only)."""
    stored = {row.tobytes() for row in data["obs"]}
    assert all(row.tobytes() in stored for row in np.asarray(batch.obs))


@pytest.mark.parametrize("batch_size", [32, 256])
def test_numpy_buffer_sample_speed(benchmark, batch_size: int) -> None:
    buf, data = _filled(ReplayBuffer)
    rng = np.random.default_rng(0)
    batch = benchmark(buf.sample, batch_size, rng)
    assert batch.obs.shape == (batch_size, OBS_DIM)
    _assert_rows_stored(batch, data)


def test_shared_buffer_sample_speed(benchmark) -> None:
    shared = pytest.importorskip("rlbench.buffers.shared")
    buf, data = _filled(shared.SharedReplayBuffer)
    try:
        batch = benchmark(buf.sample, 256, np.random.default_rng(0))
        assert batch.obs.shape == (256, OBS_DIM)
        _assert_rows_stored(batch, data)
    finally:
        buf.close()


def test_jax_buffer_sample_speed(benchmark) -> None:
    jax_buffer = pytest.importorskip("rlbench.buffers.jax_buffer")
    import jax

    from rlbench.types import Batch

    buf = jax_buffer.JaxReplayBuffer(1_000, (OBS_DIM,))
    data = _transitions(600)
    state = buf.add_batch(buf.init(), Batch(**data))
    sample = jax.jit(buf.sample, static_argnums=1)
    key = jax.random.key(0)
    sample(state, 256, key)  # compile outside the timer

    batch = benchmark(lambda: jax.block_until_ready(sample(state, 256, key)))
    assert batch.obs.shape == (256, OBS_DIM)
    _assert_rows_stored(batch, data)


# -- DQN / IQN act and update ------------------------------------------------------------------
@pytest.fixture(params=["dqn", "iqn"])
def q_agent(request):
    q_learning = pytest.importorskip("rlbench.trainers.q_learning")
    from rlbench.envs import make
    from rlbench.trainers import config_class

    env = make("CartPole-v1", seed=0)
    config = config_class(request.param)(batch_size=64, seed=0, device="cpu")
    agent = q_learning.make_agent(config, env, q_learning.resolve_device("cpu"))
    env.close()
    return agent


def test_q_agent_act_speed(benchmark, q_agent) -> None:
    obs = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
    rng = np.random.default_rng(0)
    benchmark(q_agent.act, obs, 0.0, rng)
    # epsilon 0: the network's greedy choice, so the benchmark timed the forward pass. IQN
    # samples its quantile fractions on every call (torch's RNG): compare one act with one
    # greedy_actions from the same torch seed, not two independent draws.
    import torch

    torch.manual_seed(0)
    action = q_agent.act(obs, 0.0, rng)
    torch.manual_seed(0)
    assert action == int(q_agent.greedy_actions(obs[None])[0])


def test_q_agent_update_speed(benchmark, q_agent) -> None:
    buf = ReplayBuffer(1_000, (OBS_DIM,))
    buf.add_batch(**_transitions(1_000))
    batch = buf.sample(64, np.random.default_rng(0))
    before = [p.detach().clone() for p in q_agent.online.parameters()]
    info = benchmark(q_agent.update, batch)
    assert np.isfinite(info["loss"]) and info["grad_norm"] > 0
    assert any(not (p == b).all() for p, b in zip(q_agent.online.parameters(), before))


# -- SAC act and update --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sac():
    """A small SAC past learning_starts, its act and update chunk already compiled."""
    sac_jax = pytest.importorskip("rlbench.trainers.sac_jax")
    config = sac_jax.Config(env_id="probe:5-continuous", hidden_sizes=(32, 32), batch_size=32,
                            buffer_size=256, learning_starts=32, total_steps=10_000, seed=0)
    agent = sac_jax.SAC(config)
    agent.advance(config.learning_starts + 1)
    agent.act(agent._obs)
    agent.train_chunk()  # compile the update outside the timed call
    yield agent
    agent.env.close()


def test_sac_act_speed(benchmark, sac) -> None:
    action = benchmark(sac.act, sac._obs)
    assert action.shape == (1,) and np.all(np.abs(action) <= 1.0)


def test_sac_update_chunk_speed(benchmark, sac) -> None:
    import jax

    updates = sac.updates

    def update() -> None:
        sac.train_chunk()  # staged rows in, chunk_updates scanned gradient steps, write-back
        jax.block_until_ready(sac.state)

    benchmark(update)
    assert sac.updates > updates
    assert sac.last_metrics and all(np.isfinite(float(v)) for v in sac.last_metrics.values())
