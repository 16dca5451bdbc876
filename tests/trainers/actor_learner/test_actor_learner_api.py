"""The actor/learner trainer through the `rlbench.api` protocol: `advance` resumes one run of
live processes exactly on the single-process schedule, `policy`/`values` read the latest
published weights between calls, and `close` (or a crash, or garbage collection) stops the
children and frees the shared memory.

Every assertion is about counts and states at the moment `advance` returns, none about
time: `advance` waits for the allowance to be completed, not for a clock. Timeouts are hang
guards.
"""

from __future__ import annotations

import gc
import json
import re
import time

import numpy as np
import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

import torch

from rlbench import api
from rlbench.config import DQNConfig
from rlbench.envs import make
from rlbench.trainers.actor_learner import (
    ActorLearnerTrainer,
    RunStalled,
    _numpy_weights,
    actor_block,
    updates_due,
    weights_digest,
)
from rlbench.trainers.multiproc import ChildProcessFailed
from rlbench.trainers.q_learning import make_agent, make_epsilon_schedule
from tests.odd_envs import FREEZE_AFTER
from tests.segments import in_dev_shm, mapped

SMALL = dict(
    total_steps=2_000, learning_starts=300, train_frequency=2, eval_episodes=2,
    buffer_size=5_000, batch_size=32, hidden_sizes=(32, 32), exploration_fraction=0.25,
    log_interval=500, actors=2, publish_interval=5,
    stall_timeout_s=10.0,  # a stuck child is reported, naming the counters, not waited on
)


def _segments(trainer: ActorLearnerTrainer) -> set[str]:
    return {trainer.buffer.segment_name, trainer.channel.segment_name}


def _assert_state(trainer: ActorLearnerTrainer, config: DQNConfig) -> None:
    """The run at `env_steps`: every allowed step written (claims are cut at the allowance,
    so actors overshoot it by 0 steps, not just by less than a block), the single-process
    schedule's updates made, and their weights published."""
    steps = trainer.env_steps
    assert trainer.buffer.total_writes == trainer.counters.claimed.value == steps
    assert trainer.counters.learner_updates.value == updates_due(steps, config)
    assert trainer.channel.version == updates_due(steps, config)
    metrics = trainer.metrics()
    assert metrics["updates"] == updates_due(steps, config)
    assert metrics["epsilon"] == make_epsilon_schedule(config)(steps) == trainer.channel.epsilon


@pytest.mark.timeout(300)
def test_advance_resumes_the_run_and_close_frees_everything() -> None:
    config = DQNConfig(**SMALL)
    trainer = api.make_trainer("dqn", config)  # config.actors >= 1: through the registry
    try:
        assert isinstance(trainer, ActorLearnerTrainer)
        assert isinstance(trainer, api.ValueTrainer) and api.has_values(trainer)
        segments = _segments(trainer)
        obs, _ = make(config.env_id, seed=0).reset(seed=0)

        trainer.advance(700)
        assert trainer.env_steps == 700
        _assert_state(trainer, config)
        # Every child has attached by now, so the names are gone from /dev/shm: not even a
        # SIGKILL of the whole process group could leave a segment behind.
        assert trainer.group.all_started and in_dev_shm(segments) == set(), (
            "segment names outlive the children's start-up")
        q_first = trainer.values(obs)
        assert q_first.shape == (2,) and np.isfinite(q_first).all()
        assert trainer.policy()(obs) in (0, 1)
        # The local agent holds exactly the latest publication.
        assert weights_digest(_numpy_weights(trainer.agent)) == weights_digest(
            trainer.channel.read()[0])

        trainer.advance(900)  # the same processes, buffer and learner carry on
        assert trainer.env_steps == 1_600
        _assert_state(trainer, config)
        assert not np.array_equal(trainer.values(obs), q_first)  # 650 - 201 more updates
        assert trainer.policy()(obs) in (0, 1)
        assert weights_digest(_numpy_weights(trainer.agent)) == weights_digest(
            trainer.channel.read()[0])
        assert mapped(segments) == segments  # still mapped here while the run is open
        procs = list(trainer.group.procs.values())
    finally:
        trainer.close()
    assert all(p.exitcode is not None for p in procs)
    assert in_dev_shm(segments) == set() and mapped(segments) == set()
    trainer.close()  # a second close is harmless
    assert trainer.values(obs).shape == (2,)  # the last loaded weights stay usable
    with pytest.raises(RuntimeError, match="closed"):
        trainer.advance(10)


@pytest.mark.timeout(300)
def test_a_crashed_actor_surfaces_from_advance_and_the_trainer_closes() -> None:
    """An actor whose env returns a NaN reward dies on the buffer's validation (after
    `tests.nan_env.NAN_AFTER` steps): `advance` raises it with the actor's traceback, having
    stopped the learner and freed the segments."""
    config = DQNConfig(**SMALL | {"actors": 1, "env_id": "tests.nan_env:NaNRewardCartPole-v0"})
    trainer = api.make_trainer("dqn", config)
    assert isinstance(trainer, ActorLearnerTrainer), "actors=1 must mean one actor process"
    segments = _segments(trainer)
    with pytest.raises(ChildProcessFailed) as info:
        trainer.advance(1_000)
    assert info.value.child == "actor-0"
    assert "reward: contains NaN or inf" in str(info.value)
    assert "buffer.add" in info.value.child_traceback
    assert all(p.exitcode is not None for p in trainer.group.procs.values())
    assert in_dev_shm(segments) == set() and mapped(segments) == set()
    trainer.close()


@pytest.mark.timeout(120)
def test_a_stuck_actor_raises_run_stalled_naming_where_the_run_stopped() -> None:
    """An actor whose env hangs in `step` (after `FREEZE_AFTER` steps, inside a claimed
    block): `advance` does not wait forever but raises `RunStalled` once nothing moved for
    stall_timeout_s; the message shows the claimed block that was never written, and the
    trainer has stopped every child and freed the segments."""
    config = DQNConfig(**SMALL | {"actors": 1, "env_id": "tests.odd_envs:FreezingCartPole-v0",
                                  "stall_timeout_s": 2.0})
    trainer = ActorLearnerTrainer(config)
    segments = _segments(trainer)
    with pytest.raises(RunStalled) as info:
        trainer.advance(1_000)
    message = str(info.value)
    counts = {k: int(v) for k, v in re.findall(r"(allowance|claimed|written) (\d+)", message)}
    # Blocks are written whole once stepped: the writes stop at the last full block before
    # the freeze, and the block the actor froze in is claimed but never written.
    block = actor_block(config, max(config.publish_interval, config.gradient_steps))
    written = FREEZE_AFTER // block * block
    assert counts == {"allowance": 1_000, "claimed": written + block,
                      "written": written}, message
    assert "stall_timeout_s=2" in message and "still running: learner, actor-0" in message
    assert all(p.exitcode is not None for p in trainer.group.procs.values())
    assert in_dev_shm(segments) == set() and mapped(segments) == set()
    with pytest.raises(RuntimeError, match="closed"):
        trainer.advance(1)


@pytest.mark.timeout(300)
def test_idling_between_calls_is_not_a_stall() -> None:
    """Between `advance` calls nothing runs (an evaluation, a user's own work): a pause
    longer than stall_timeout_s before the next `advance` or `finish` is not a stall."""
    config = DQNConfig(**SMALL | {"actors": 1, "total_steps": 200, "stall_timeout_s": 0.5})
    trainer = ActorLearnerTrainer(config)
    try:
        trainer.advance(100)
        time.sleep(1.0)
        trainer.advance(100)
        time.sleep(1.0)
        summary = trainer.finish()
    finally:
        trainer.close()
    assert summary["steps"] == 200


@pytest.mark.timeout(300)
def test_an_unclosed_trainer_is_cleaned_up_when_collected() -> None:
    """The finalizer, not `close()`: dropping the last reference stops the children (still
    starting here, which keeps the test cheap) and removes the named segments."""
    trainer = ActorLearnerTrainer(DQNConfig(**SMALL | {"actors": 1}))
    segments, procs = _segments(trainer), list(trainer.group.procs.values())
    assert in_dev_shm(segments) == segments  # nothing polled yet: the names are still there
    del trainer
    gc.collect()
    assert all(p.exitcode is not None for p in procs)
    assert in_dev_shm(segments) == set() and mapped(segments) == set()


def test_after_a_child_failure_policy_and_values_show_the_last_published_weights() -> None:
    # probe:nan-reward turns its reward NaN after 20 steps per actor env; the actor refuses
    # it (ChildProcessFailed). Updates start at step 8 and are published every 2, so the
    # learner has published trained weights by then: reads after the failure must show
    # them (what `rlbench check`'s nan-reward judges), not the untrained initial weights.
    config = DQNConfig(env_id="probe:nan-reward", total_steps=200, learning_starts=8,
                       train_frequency=1, batch_size=4, buffer_size=100, hidden_sizes=(8,),
                       eval_episodes=1, actors=1, publish_interval=2, seed=0)
    trainer = ActorLearnerTrainer(config)
    obs = np.zeros(1, np.float32)
    initial = trainer.values(obs).copy()
    with pytest.raises(ChildProcessFailed, match="NaN"):
        trainer.advance(200)
    after = trainer.values(obs)
    assert np.isfinite(after).all(), after
    assert not np.array_equal(after, initial), (
        "values after the failure are the initial weights': the last publication was dropped")


@pytest.mark.timeout(300)
def test_a_trainer_finished_at_step_zero_holds_the_seeds_initial_weights() -> None:
    """Before any step: the parent runs `torch_threads` torch threads, `env_steps` is 0,
    `advance(0)` is a no-op, and `values()` are the seed's initial network (what the learner
    publishes as version 0), read before that publication arrives or after. `finish()` at
    step 0 reports no updates and no stepping rate (nothing was stepped), keeps `values()`
    on the final publication, and a later `advance` names the finished run."""
    config = DQNConfig(**SMALL | {"actors": 1, "torch_threads": 1})
    obs = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
    env = make(config.env_id)
    torch.manual_seed(config.seed)  # exactly how the trainer and the learner build theirs
    initial = make_agent(config, env, torch.device("cpu")).q_values(obs[None])[0]
    env.close()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        trainer = ActorLearnerTrainer(config)
        try:
            assert torch.get_num_threads() == config.torch_threads
            assert trainer.env_steps == 0
            np.testing.assert_array_equal(trainer.values(obs), initial)
            trainer.advance(0)
            assert trainer.env_steps == 0 and trainer.counters.allowance.value == 0
            summary = trainer.finish()
        finally:
            trainer.close()
    finally:
        torch.set_num_threads(threads)
    assert summary["steps"] == 0 and summary["updates"] == 0
    assert summary["sps_stepping"] is None, "a run that never stepped has no stepping rate"
    assert summary["learner"]["version"] == 0
    assert weights_digest(_numpy_weights(trainer.agent)) == summary["learner"]["weights_digest"]
    np.testing.assert_array_equal(trainer.values(obs), initial)
    with pytest.raises(RuntimeError, match="finished"):
        trainer.advance(10)


@pytest.mark.timeout(300)
def test_metrics_after_finish_carry_the_learners_last_logged_train_row(tmp_path) -> None:
    """The learner's train rows reach the parent as messages; `finish()` drains them all, so
    `metrics()` then holds the last one's losses (the row metrics.jsonl ends with)."""
    config = DQNConfig(**SMALL | {"actors": 1, "log_interval": 200})
    trainer = ActorLearnerTrainer(config, out_dir=tmp_path)
    try:
        trainer.advance(700)
        trainer.finish()
    finally:
        trainer.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    assert [r["step"] for r in train][-1] >= 600, train
    metrics = trainer.metrics()
    assert "loss" in metrics, f"metrics() lack the learner's train row: {sorted(metrics)}"
    assert metrics["loss"] == pytest.approx(train[-1]["loss"])
