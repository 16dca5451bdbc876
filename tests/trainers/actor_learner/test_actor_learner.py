"""The actor/learner trainer end to end on tiny budgets: it finishes, keeps the update
schedule, bounds policy lag, delivers weights and epsilon to the actors, reports child
crashes with their tracebacks, and leaves no shared memory behind.

One real run (2 actors, 2,000 CartPole steps) is shared by the first tests; the crash tests
start their own. Timeouts are hang guards, not speed claims.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from rlbench import trainers
from rlbench.config import DQNConfig, IQNConfig
from rlbench.trainers import actor_learner
from rlbench.trainers.multiproc import ChildProcessFailed
from rlbench.trainers.q_learning import planned_updates
from tests.segments import segments_of

TINY = dict(
    total_steps=2_000, learning_starts=300, train_frequency=2, eval_interval=800,
    eval_episodes=2, buffer_size=5_000, batch_size=32, hidden_sizes=(32, 32),
    exploration_fraction=0.25, log_interval=500, actors=2, publish_interval=5,
    # Once its processes are set up, nothing in this run idles for seconds: a stuck child
    # (a deadlock) is reported as RunStalled, naming the counters, after 10 s.
    stall_timeout_s=10.0,
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    config = DQNConfig(**TINY)
    out = tmp_path_factory.mktemp("actor_learner")
    try:
        summary = actor_learner.train(config, out_dir=out, progress=False)
    except (ChildProcessFailed, actor_learner.RunStalled) as exc:
        # Kept, not raised: a crash here must fail the tests that use the run (in their
        # bodies), not error their set-up — the kill matrix counts only failures as kills.
        summary = exc
    return config, summary, out


def _finished(run) -> tuple:
    config, summary, out = run
    if isinstance(summary, Exception):
        pytest.fail(f"the actor/learner run died: {summary}")
    return config, summary, out


@pytest.mark.detects("step-counter-missing")
@pytest.mark.timeout(300)
def test_actor_learner_run_finishes_on_the_single_process_schedule(run) -> None:
    """Detector for step-counter-missing: the learner must live to the end of the run."""
    config, summary, out = _finished(run)
    assert summary["steps"] == config.total_steps
    assert sum(a["steps"] for a in summary["actor_results"]) == config.total_steps
    assert summary["buffer"]["total_writes"] == config.total_steps
    # The same number of updates the single-process loop makes for this config.
    assert summary["updates"] == planned_updates(config) == summary["learner"]["training_step"]
    assert actor_learner.updates_due(config.total_steps, config) == planned_updates(config)
    saved = json.loads((out / "summary.json").read_text())
    assert {"policy_lag_mean", "policy_lag_max", "final_eval_return", "sps"} <= saved.keys()
    # Evaluated at every eval_interval and at total_steps (not a multiple of it here).
    assert [e["step"] for e in saved["eval_history"]] == [800, 1_600, 2_000]
    assert [e["completed"] for e in saved["eval_history"]][-1] == config.eval_episodes
    kinds = [json.loads(line)["kind"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"episode", "train", "eval"} <= set(kinds)


@pytest.mark.detects("stale-actor-weights")
def test_actor_learner_policy_lag_within_publish_interval(run) -> None:
    """Detector for stale-actor-weights. Lag = learner updates (read just before the actor
    refreshes) minus the version it then acts with; the learner announces an update before
    publishing it, so the bound is exactly publish_interval, with zero slack."""
    config, summary, _ = _finished(run)
    assert 0 <= summary["policy_lag_mean"] <= summary["policy_lag_max"] <= config.publish_interval
    # At write time the learner can only have moved on: per transition, lag at write >= lag.
    assert summary["policy_lag_at_write_max"] >= summary["policy_lag_max"]
    assert summary["policy_lag_at_write_mean"] >= summary["policy_lag_mean"]
    # The run's figures are the actors' own, pooled over every step they made.
    actors = summary["actor_results"]
    steps = sum(a["steps"] for a in actors)
    assert summary["policy_lag_max"] == max(a["lag_max"] for a in actors)
    assert summary["policy_lag_at_write_max"] == max(a["write_lag_max"] for a in actors)
    assert summary["policy_lag_mean"] == pytest.approx(sum(a["lag_sum"] for a in actors) / steps)
    assert summary["policy_lag_at_write_mean"] == pytest.approx(
        sum(a["write_lag_sum"] for a in actors) / steps)


def test_actor_learner_stepping_rate_leaves_out_start_up(run) -> None:
    # sps_stepping times first step to last completed allowance, inside the run's wall time.
    _, summary, _ = _finished(run)
    assert summary["sps_stepping"] is not None and summary["sps_stepping"] >= summary["sps"] > 0


@pytest.mark.detects("stale-actor-weights", "epsilon-not-published")
def test_actor_learner_actors_hold_the_last_published_weights_and_epsilon(run) -> None:
    """Detector for stale-actor-weights and epsilon-not-published: at the end every actor
    holds exactly the learner's final publication, whose epsilon has decayed to the minimum."""
    config, summary, _ = _finished(run)
    learner = summary["learner"]
    assert learner["epsilon"] == config.epsilon_min == summary["final_epsilon"]
    for actor in summary["actor_results"]:
        assert actor["weights_digest"] == learner["weights_digest"]
        assert actor["version"] == learner["version"] == summary["updates"]
        assert actor["epsilon"] == learner["epsilon"]


def test_actor_learner_transitions_carry_policy_versions(run) -> None:
    _, summary, _ = _finished(run)
    buffer = summary["buffer"]
    assert buffer["version_min"] == 0  # warm-up transitions come from the initial weights
    assert 0 < buffer["version_max"] <= summary["updates"]
    assert buffer["zero_obs_fraction"] < 0.05


def test_actor_learner_children_run_one_torch_thread(run) -> None:
    _, summary, _ = _finished(run)
    assert summary["learner"]["torch_threads"] == 1
    assert all(a["torch_threads"] == 1 for a in summary["actor_results"])


def test_actor_learner_leaves_no_shared_memory_after_a_normal_run(run) -> None:
    _finished(run)
    assert segments_of() == set()


@pytest.mark.timeout(300)
def test_actor_learner_learner_crash_raises_with_child_traceback(tmp_path) -> None:
    """A learner that dies (here: IQN with its step counter never initialised) makes the
    parent raise with the learner's own exception and traceback, and stop the actors."""
    config = IQNConfig(**TINY | {"actors": 1, "faults": ("step-counter-missing",)})
    with pytest.raises(ChildProcessFailed) as info:
        actor_learner.train(config, out_dir=tmp_path, progress=False)
    err = info.value
    assert err.child == "learner"
    assert "AttributeError" in str(err) and "training_step" in str(err)
    assert "in run" in err.child_traceback  # frames from the learner process
    assert segments_of() == set()
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.timeout(300)
def test_actor_learner_actor_crash_raises_with_child_traceback(tmp_path) -> None:
    """An actor whose env returns a NaN reward dies on the buffer's validation; the parent
    raises with that message and the actor's traceback."""
    config = DQNConfig(**TINY | {"actors": 1, "env_id": "tests.nan_env:NaNRewardCartPole-v0"})
    with pytest.raises(ChildProcessFailed) as info:
        # Through the public entry point: one actor is still the actor/learner trainer
        # (run in-process, the NaN would be a plain ValueError from the single loop).
        trainers.train("dqn", config, out_dir=tmp_path)
    err = info.value
    assert err.child.startswith("actor-")
    assert "ValueError: reward: contains NaN or inf" in str(err)
    assert "buffer.add" in err.child_traceback
    assert segments_of() == set()


def test_actor_learner_rejects_zero_actors() -> None:
    with pytest.raises(ValueError, match="actors >= 1"):
        actor_learner.train(DQNConfig(**TINY | {"actors": 0}))
