"""Truncation is not termination, in every place a transition is stored or consumed.

The law (Pardo et al., 2018, "Time limits in reinforcement learning"): an episode cut by a
time limit ends in a state that still has a future, so the transition is stored with
``terminated=False, truncated=True`` and its TD target bootstraps; only a real termination
stores ``terminated=True`` and stops the bootstrap. Each test drives one storage path (the
single-process DQN/IQN loop, an actor of the actor/learner trainer, the SAC loop) on the
``probe:timelimit`` environment (every step is cut by the time limit, none terminates) and
on ``probe:1`` (every step terminates), and reads back what was stored.
"""

from __future__ import annotations

import multiprocessing
from typing import Any

import numpy as np
import pytest

from rlbench.envs import make
from tests.stand_ins import RecordingWorker

TIMELIMIT_STEPS = 24


def test_timelimit_probe_truncates_every_episode_and_never_terminates() -> None:
    for env_id in ("probe:timelimit", "probe:timelimit-continuous"):
        env = make(env_id, seed=0)
        action = 0 if env_id == "probe:timelimit" else np.zeros(1, np.float32)
        for _ in range(3):
            obs, _ = env.reset()
            assert obs.tolist() == [0.0]
            next_obs, reward, terminated, truncated, _ = env.step(action)
            assert (reward, terminated, truncated) == (1.0, False, True), env_id
            assert next_obs.tolist() == [0.0]
    # A longer limit: T - 1 uncut steps, then the cut.
    env = make("probe:timelimit", time_limit=3)
    env.reset(seed=0)
    assert [env.step(0)[2:4] for _ in range(3)] == [(False, False), (False, False), (False, True)]


def _assert_stored_flags(terminated: np.ndarray, truncated: np.ndarray, env_id: str,
                         where: str) -> None:
    terminated, truncated = np.asarray(terminated, bool), np.asarray(truncated, bool)
    assert terminated.size == TIMELIMIT_STEPS, f"{where}: stored {terminated.size} transitions"
    if env_id == "probe:timelimit":
        assert not terminated.any(), (
            f"{where} stored {int(terminated.sum())}/{terminated.size} time-limit truncations "
            "as terminal: they must be stored with terminated=False so the target bootstraps")
        assert truncated.all(), f"{where} lost the truncated flag of time-limit cuts"
    else:
        assert terminated.all(), f"{where} did not store real terminations as terminal"
        assert not truncated.any(), f"{where} stored terminations as truncations"


# -- single-process DQN / IQN loop (q_learning.fit) ------------------------------------------
@pytest.mark.parametrize("env_id", ["probe:timelimit", "probe:1"])
@pytest.mark.parametrize("algo", ["dqn", "iqn"])
def test_fit_stores_time_limit_cuts_as_truncated_and_terminations_as_terminal(
    algo: str, env_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    from rlbench.buffers import ReplayBuffer
    from rlbench.config import DQNConfig, IQNConfig
    from rlbench.trainers import q_learning
    from rlbench.trainers.dqn_torch import DQNAgent
    from rlbench.trainers.iqn_torch import IQNAgent

    buffers: list[ReplayBuffer] = []

    class RecordingBuffer(ReplayBuffer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            buffers.append(self)

    monkeypatch.setattr(q_learning.loop, "ReplayBuffer", RecordingBuffer)  # where fit looks it up
    cls, agent_cls = (DQNConfig, DQNAgent) if algo == "dqn" else (IQNConfig, IQNAgent)
    config = cls(env_id=env_id, total_steps=TIMELIMIT_STEPS, learning_starts=TIMELIMIT_STEPS + 1,
                 train_frequency=4, hidden_sizes=(8, 8), eval_interval=TIMELIMIT_STEPS,
                 eval_episodes=1, buffer_size=100, seed=0)
    q_learning.fit(config, agent_cls, algo, progress=False)
    (buffer,) = buffers
    stored = buffer.get(np.arange(len(buffer)))
    _assert_stored_flags(stored.terminated, stored.truncated, env_id, f"{algo} fit loop")


def test_batch_conversion_keeps_truncated_rows_non_terminal() -> None:
    """The loss sees `terminated` only: a truncated-only row must reach it as non-terminal."""
    pytest.importorskip("torch")
    import torch

    from rlbench.trainers.q_learning import batch_to_tensors
    from rlbench.types import Batch

    batch = Batch(obs=np.zeros((4, 1), np.float32), action=np.zeros(4, np.int64),
                  reward=np.ones(4, np.float32), next_obs=np.zeros((4, 1), np.float32),
                  terminated=np.array([False, True, False, True]),
                  truncated=np.array([True, True, False, False]))
    tb = batch_to_tensors(batch, torch.device("cpu"))
    assert tb.terminated.tolist() == [False, True, False, True], (
        "batch_to_tensors turned truncation into termination (or dropped a termination)")


# -- actor/learner: an actor's storage path, in process -----------------------------------
@pytest.mark.parametrize("env_id", ["probe:timelimit", "probe:1"])
def test_actor_stores_time_limit_cuts_as_truncated_and_terminations_as_terminal(
    env_id: str,
) -> None:
    torch = pytest.importorskip("torch")
    from rlbench.buffers.shared import SharedReplayBuffer
    from rlbench.config import DQNConfig
    from rlbench.trainers.actor_learner import Actor, Counters, _numpy_weights
    from rlbench.trainers.multiproc import WeightChannel
    from rlbench.trainers.q_learning import make_agent

    # No update is ever due (learning_starts > total_steps), so the actor never waits on a
    # learner; the learner's "finished" event is set up front.
    config = DQNConfig(env_id=env_id, total_steps=TIMELIMIT_STEPS,
                       learning_starts=TIMELIMIT_STEPS + 1, hidden_sizes=(8, 8),
                       buffer_size=100, actors=1, seed=0)
    ctx = multiprocessing.get_context("spawn")
    buffer = SharedReplayBuffer(config.buffer_size, (1,), ctx=ctx)
    counters = Counters(ctx.Value("q", 0), ctx.Value("q", 0, lock=False), ctx.Event())
    counters.learner_finished.set()
    channel = None
    try:
        template = _numpy_weights(make_agent(config, make(env_id), torch.device("cpu")))
        channel = WeightChannel(template, ctx=ctx)
        channel.publish(template, version=0, epsilon=1.0)
        actor = Actor(config, 0, buffer, channel, counters, RecordingWorker())
        result = actor.run()
        actor.env.close()
        assert result["steps"] == TIMELIMIT_STEPS
        stored = buffer.get(np.arange(len(buffer)))
        _assert_stored_flags(stored.terminated, stored.truncated, env_id, "actor/learner actor")
    finally:
        if channel is not None:
            channel.close()
        buffer.close()


# -- SAC loop ------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ["probe:timelimit-continuous", "probe:1-continuous"])
def test_sac_stores_time_limit_cuts_as_truncated_and_terminations_as_terminal(env_id: str) -> None:
    pytest.importorskip("jax")
    from rlbench.config import SACConfig
    from rlbench.trainers.sac_jax import SAC

    # Warm-up only (no update is due): the loop's staging and device write are what is checked.
    sac = SAC(SACConfig(env_id=env_id, hidden_sizes=(8, 8), batch_size=4, buffer_size=100,
                        learning_starts=TIMELIMIT_STEPS + 1, chunk_updates=1,
                        total_steps=TIMELIMIT_STEPS, eval_interval=TIMELIMIT_STEPS,
                        eval_episodes=1, seed=0))
    sac.advance(TIMELIMIT_STEPS)
    sac.train_metrics()  # flushes the staging rows into the device buffer
    n = int(sac.buffer_state.size)
    data = sac.buffer_state.data
    _assert_stored_flags(np.asarray(data.terminated)[:n], np.asarray(data.truncated)[:n],
                         env_id.removesuffix("-continuous"), "SAC loop")
