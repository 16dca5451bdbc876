"""The actor/learner's parts, in process, against their laws: an actor stores exactly its
own env's transitions with the policy version it acted with, holds the last publication's
weights and epsilon, and accounts policy lag as documented; the learner makes the
scheduled updates, publishes every `publish_interval` updates and at each completed
allowance, and reports its replay age; the weights digest names every key and byte; the
idle back-off doubles to its cap.

The end-to-end tests (test_actor_learner.py) run these parts in child processes, where
timing decides what a run sees; here each part runs alone in the test's process with the
other side's shared state set by hand, so every number has one exact expected value.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from rlbench.buffers.shared import SharedReplayBuffer
from rlbench.config import DQNConfig
from rlbench.envs import make
from rlbench.trainers import actor_learner
from rlbench.trainers.actor_learner import (
    ACTOR_SEED_STRIDE,
    MAX_IDLE_SLEEP_S,
    MIN_IDLE_SLEEP_S,
    Actor,
    Backoff,
    Counters,
    Learner,
    VersionedPending,
    _numpy_weights,
    weights_digest,
)
from rlbench.trainers.multiproc import WeightChannel
from rlbench.trainers.q_learning import make_agent, planned_updates
from tests.stand_ins import RecordingWorker
from tests.transitions import assert_buffer_replays_the_env

pytestmark = pytest.mark.law
ENV = "CartPole-v1"
SHORT = "tests.odd_envs:ShortCartPole-v0"  # CartPole cut by a 7-step time limit


def _record_publications(channel: WeightChannel) -> list[tuple[int, float]]:
    """From now on, every `channel.publish` also appends its (version, epsilon) here."""
    published: list[tuple[int, float]] = []
    publish = channel.publish

    def recording(arrays: Any, version: int, epsilon: float) -> None:
        published.append((version, epsilon))
        publish(arrays, version=version, epsilon=epsilon)

    channel.publish = recording  # type: ignore[method-assign]
    return published


def _weights(config: DQNConfig, torch_seed: int) -> dict[str, np.ndarray]:
    torch.manual_seed(torch_seed)
    env = make(config.env_id)
    try:
        return _numpy_weights(make_agent(config, env, torch.device("cpu")))
    finally:
        env.close()


def test_the_runs_policy_lag_pools_every_actors_steps_and_takes_the_worst_actor() -> None:
    # Actor 0: 10 steps at lag 1 (at write 2); actor 1: 30 steps, lags summing to 90, at most
    # 5 (at write 120, at most 7). The run's means are per step over both actors, its
    # maxima the worst actor's, whichever actor that is.
    a0 = {"steps": 10, "lag_sum": 10, "lag_max": 1, "write_lag_sum": 20, "write_lag_max": 2}
    a1 = {"steps": 30, "lag_sum": 90, "lag_max": 5, "write_lag_sum": 120, "write_lag_max": 7}
    expected = {"policy_lag_mean": 2.5, "policy_lag_max": 5,
                "policy_lag_at_write_mean": 3.5, "policy_lag_at_write_max": 7}
    assert actor_learner.pooled_policy_lag([a0, a1]) == expected
    assert actor_learner.pooled_policy_lag([a1, a0]) == expected


def test_weights_digest_names_every_key_and_byte() -> None:
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(3, np.float32)}
    digest = weights_digest(arrays)
    assert weights_digest({k: v.copy() for k, v in arrays.items()}) == digest
    changed = {**arrays, "b": arrays["b"] + np.float32(1e-7)}
    assert weights_digest(changed) != digest, "a changed weight kept the digest"
    renamed = {"w": arrays["w"], "c": arrays["b"]}
    assert weights_digest(renamed) != digest, "a renamed array kept the digest"


def test_idle_backoff_doubles_to_its_cap_and_reset_starts_over(monkeypatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(actor_learner.time, "sleep", slept.append)
    backoff = Backoff()
    for _ in range(12):
        backoff.wait()
    expected = [min(MIN_IDLE_SLEEP_S * 2**k, MAX_IDLE_SLEEP_S) for k in range(12)]
    assert slept == pytest.approx(expected), "idle sleeps must double from the minimum to the cap"
    assert expected[-1] == MAX_IDLE_SLEEP_S, "the cap was not reached: the law was not tested"
    backoff.reset()
    backoff.wait()
    assert slept[-1] == MIN_IDLE_SLEEP_S, "reset() did not start the back-off over"


def test_versioned_pending_stores_each_transition_with_its_version() -> None:
    rows = 5
    pending = VersionedPending(rows, (2,))
    obs = np.arange(2 * rows, dtype=np.float32).reshape(rows, 2)
    for i in range(rows):
        pending.add(obs[i], i % 2, float(i), obs[i] + 100, False, i == rows - 1, version=10 + i)
    with SharedReplayBuffer(8, (2,)) as buffer:
        pending.flush_into(buffer)
        assert pending.n == 0
        stored, idx = buffer.get(np.arange(rows)), np.arange(rows)
        np.testing.assert_array_equal(stored.obs, obs)
        np.testing.assert_array_equal(stored.next_obs, obs + 100)
        np.testing.assert_array_equal(buffer.versions(idx), 10 + idx,
                                      err_msg="a stored transition lost its policy version")


@pytest.mark.parametrize("env_id", [ENV, SHORT])
def test_an_actor_stores_its_envs_transitions_and_holds_the_publication(env_id: str) -> None:
    # No update is due (learning_starts > total_steps), so the actor never waits on a
    # learner; the learner is 2 updates past the published version 3 the whole time.
    # SHORT cuts every episode by a time limit: the actor must end and reset it there too.
    steps, version, epsilon, learner_updates = 40, 3, 0.25, 5
    config = DQNConfig(env_id=env_id, total_steps=steps, learning_starts=steps + 1,
                       hidden_sizes=(8, 8), buffer_size=64, actors=2, seed=5)
    ctx = multiprocessing.get_context("spawn")
    buffer = SharedReplayBuffer(config.buffer_size, (4,), ctx=ctx)
    counters = Counters(ctx.Value("q", 0), ctx.Value("q", learner_updates, lock=False), ctx.Event())
    counters.learner_finished.set()
    published = _weights(config, torch_seed=123)
    channel = WeightChannel(published, ctx=ctx)
    try:
        channel.publish(published, version=version, epsilon=epsilon)
        actor = Actor(config, 1, buffer, channel, counters, RecordingWorker())
        try:
            result = actor.run()
        finally:
            actor.env.close()
        assert result["steps"] == steps == len(buffer)
        # Actor i's env is seeded seed + (i + 1) * stride: its episodes can be replayed.
        stored = buffer.get(np.arange(steps))
        ends = assert_buffer_replays_the_env(stored, env_id,
                                             config.seed + 2 * ACTOR_SEED_STRIDE, "actor 1")
        if env_id == SHORT:
            assert stored.truncated.any(), "no time-limit cut in the stored steps: test too short"
        assert result["episodes"] == ends
        # Each episode record names the global step it ended at (steps count from 1).
        ends_at = [i + 1 for i, end in enumerate(stored.terminated | stored.truncated) if end]
        records = [p for kind, p in actor.worker.messages if kind == "episode"]
        assert [p["step"] for p in records] == ends_at, (
            "episode records do not name the step each episode ended at")
        starts = [0, *ends_at[:-1]]  # each record's return and length are its episode's rows
        assert [(p["ret"], p["length"]) for p in records] == [
            (pytest.approx(float(stored.reward[a:b].sum())), b - a) for a, b in zip(starts, ends_at)
        ], "episode records do not sum their own episode's rewards and steps"
        assert (buffer.versions(np.arange(steps)) == version).all(), (
            "a transition does not carry the version of the policy that chose its action")
        assert (result["version"], result["epsilon"]) == (version, epsilon), (
            "the actor does not hold the last publication's version and epsilon")
        assert result["weights_digest"] == weights_digest(published), (
            "the actor's weights are not the published ones")
        lag = learner_updates - version  # per step, at acting and at writing alike
        assert (result["lag_sum"], result["lag_max"]) == (lag * steps, lag)
        assert (result["write_lag_sum"], result["write_lag_max"]) == (lag * steps, lag)
    finally:
        channel.close()
        buffer.close()


@pytest.mark.timeout(120)
def test_the_learner_updates_on_schedule_publishes_and_reports_replay_age() -> None:
    # The whole allowance is written before the learner starts (all at policy version 0),
    # so every number below has one exact value.
    steps, log_interval = 64, 16
    config = DQNConfig(env_id=ENV, total_steps=steps, learning_starts=16, train_frequency=2,
                       batch_size=8, hidden_sizes=(8, 8), buffer_size=128, actors=2,
                       publish_interval=5, log_interval=log_interval, seed=1)
    ctx = multiprocessing.get_context("spawn")
    buffer = SharedReplayBuffer(config.buffer_size, (4,), ctx=ctx)
    env, rng = make(ENV, seed=0), np.random.default_rng(0)
    obs, _ = env.reset()
    for _ in range(steps):
        action = int(rng.integers(2))
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add_batch(obs[None], [action], [reward], next_obs[None], [terminated], [truncated],
                         version=0)
        obs = env.reset()[0] if terminated or truncated else next_obs
    counters = Counters.create(ctx)
    counters.allowance.value = steps
    counters.learner_finished.set()
    channel = WeightChannel(_weights(config, torch_seed=0), ctx=ctx)
    try:
        worker = RecordingWorker()
        learner = Learner(config, buffer, channel, counters, worker)
        published = _record_publications(channel)
        result = learner.run()
        versions = [version for version, _ in published]

        updates = planned_updates(config)
        assert updates == 25
        assert result["updates"] == result["training_step"] == updates
        assert counters.learner_updates.value == updates, "the shared update count lags"
        assert counters.completed.value == steps, "the allowance was not marked completed"
        assert ("completed", steps) in worker.messages
        # The initial weights, every publish_interval updates, and the completed allowance.
        assert versions == [0, 5, 10, 15, 20, 25, 25], (
            f"published versions {versions}: expected the initial set, one per "
            f"{config.publish_interval} updates, and one at the completed allowance")
        latest, _, version, epsilon = channel.read()
        assert (result["version"], version) == (updates, updates)
        assert result["epsilon"] == epsilon == learner.epsilon(steps)
        assert result["weights_digest"] == weights_digest(latest) == weights_digest(
            _numpy_weights(learner.agent))
        # Update k samples only version-0 transitions: replay age k; the mean over 1..U.
        assert result["replay_age_mean"] == pytest.approx((updates + 1) / 2), (
            "replay age is not updates-so-far minus the sampled transitions' version")
        train = [p for kind, p in worker.messages if kind == "train"]
        assert len(train) == steps // log_interval, "one train record per log_interval steps"
        assert 0.0 <= result["wait_s"] and result["busy_s"] >= 0.0
    finally:
        channel.close()
        buffer.close()
        env.close()


@pytest.mark.timeout(120)
def test_a_waiting_learner_republishes_epsilon_every_publish_period_of_steps() -> None:
    # No update is due (learning_starts > the written steps) and the allowance is not yet
    # written, so the learner waits; it republishes (same weights, the epsilon at the
    # current step) once the steps have moved a publication period past its last one:
    # publish_interval updates' worth of env steps, 5 * 2 // 1 = 10 here.
    config = DQNConfig(env_id=ENV, total_steps=50, learning_starts=100, train_frequency=2,
                       gradient_steps=1, publish_interval=5, batch_size=8, hidden_sizes=(8, 8),
                       buffer_size=64, actors=2, seed=1)
    period = config.publish_interval * config.train_frequency // config.gradient_steps
    ctx = multiprocessing.get_context("spawn")
    buffer = SharedReplayBuffer(config.buffer_size, (4,), ctx=ctx)
    counters = Counters.create(ctx)
    counters.allowance.value = config.total_steps
    channel = WeightChannel(_weights(config, torch_seed=0), ctx=ctx)
    zeros = np.zeros((1, 4), np.float32)
    try:
        for written in (period - 1, period):
            while len(buffer) < written:
                buffer.add_batch(zeros, [0], [1.0], zeros, [False], [False])
            learner = Learner(config, buffer, channel, counters, RecordingWorker(stop_after=30))
            published = _record_publications(channel)
            result = learner.run()
            del channel.publish  # the class's method again
            expected = [(0, learner.epsilon(0))] + (
                [(0, learner.epsilon(written))] if written >= period else [])
            assert published == expected, (
                f"{written} steps written, publication period {period}: published {published}")
            assert result["updates"] == 0
            assert result["wait_s"] > 0.0, "the learner waited but reports no waiting time"
    finally:
        channel.close()
        buffer.close()


def _lone_actor(config: DQNConfig, counters: Counters,
                worker: RecordingWorker | None = None) -> tuple[Actor, Any]:
    """Actor 0 in this process, version 0 (epsilon 1) published; returns (actor, cleanup)."""
    ctx = multiprocessing.get_context("spawn")
    buffer = SharedReplayBuffer(config.buffer_size, (4,), ctx=ctx)
    weights = _weights(config, torch_seed=0)
    channel = WeightChannel(weights, ctx=ctx)
    channel.publish(weights, version=0, epsilon=1.0)
    actor = Actor(config, 0, buffer, channel, counters, worker or RecordingWorker())

    def cleanup() -> None:
        actor.env.close()
        channel.close()
        buffer.close()

    return actor, cleanup


@pytest.mark.timeout(120)
def test_an_actor_asked_to_stop_claims_no_more_steps() -> None:
    config = DQNConfig(env_id=ENV, total_steps=40, learning_starts=41, hidden_sizes=(8, 8),
                       buffer_size=64, actors=2, seed=5)
    ctx = multiprocessing.get_context("spawn")
    counters = Counters(ctx.Value("q", 0), ctx.Value("q", 0, lock=False), ctx.Event())
    actor, cleanup = _lone_actor(config, counters, RecordingWorker(stop_after=0))
    try:
        result = actor.run()
        assert result["steps"] == 0 == len(actor.buffer) == counters.claimed.value, (
            "an actor asked to stop went on claiming and stepping")
    finally:
        cleanup()


def test_an_actor_accounts_each_held_transitions_lag_at_write() -> None:
    # Three held transitions acted with versions 3, 1 and 7, written while the learner is
    # at 5: lags at write 2, 4 and 0 (a version ahead of the read count is no lag).
    config = DQNConfig(env_id=ENV, hidden_sizes=(8, 8), buffer_size=64, actors=1)
    ctx = multiprocessing.get_context("spawn")
    counters = Counters(ctx.Value("q", 0), ctx.Value("q", 5, lock=False), ctx.Event())
    actor, cleanup = _lone_actor(config, counters)
    try:
        obs = np.zeros(4, np.float32)
        for version in (3, 1, 7):
            actor.pending.add(obs, 0, 1.0, obs, False, False, version=version)
        actor.flush()
        assert len(actor.buffer) == 3 and actor.pending.n == 0
        assert (actor.write_lag_sum, actor.write_lag_max) == (6, 4), (
            "write lag is not the learner's count minus each transition's version, summed and "
            "maximised over the written transitions")
    finally:
        cleanup()


@pytest.mark.timeout(120)
def test_an_actor_that_loses_a_claim_race_waits_for_the_next_allowance() -> None:
    # The actor sees 10 allowed steps unclaimed, but another actor claims them all between
    # its look and its lock. It must wait (here: until `advance` raises the allowance to 20)
    # and claim from step 11, not give up: a zero-step claim means "the run is over".
    config = DQNConfig(env_id=ENV, learning_starts=1_000, hidden_sizes=(8, 8),
                       buffer_size=64, actors=2)
    ctx = multiprocessing.get_context("spawn")
    counters = Counters(ctx.Value("q", 0), ctx.Value("q", 0, lock=False), ctx.Event(),
                        ctx.Value("q", 10, lock=False))
    claimed, lock = counters.claimed, counters.claimed.get_lock()
    raced: list[bool] = []

    @contextlib.contextmanager
    def raced_lock() -> Iterator[None]:
        with lock:  # an RLock: the rival's claim below may take it again
            if not raced:  # the first time the actor takes it, the rival has just
                claimed.value = 10  # claimed everything allowed
                raced.append(True)
            yield

    waits: list[int] = []

    def wait() -> float:  # the actor idles: the parent's `advance` raises the allowance
        waits.append(claimed.value)
        counters.allowance.value = 20
        return 0.0

    claimed.get_lock = raced_lock  # type: ignore[method-assign]
    actor, cleanup = _lone_actor(config, counters)
    try:
        actor.backoff.wait = wait  # type: ignore[method-assign]
        assert actor._claim_block() == (11, min(actor.block, 10)), (
            "after losing the race the actor did not wait for and claim the next allowance")
        assert waits == [10]
    finally:
        cleanup()
