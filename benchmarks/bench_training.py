"""End-to-end training: throughput (env steps/s, and its lower-is-better gate, seconds per
1,000 env steps) and learning progress (lower is better).

Every run goes through the public entry point `rlbench.trainers.train(algo, ...)` with the
trainer's default hyperparameters; only the budget, `learning_starts` and the evaluation
schedule are set here. `sps` is the run record's: env steps / wall seconds of the whole run
(acting, updates, evaluation, JIT compilation, run-record writes), i.e. what a user waits for.
"""

from __future__ import annotations

from typing import Any

from benchmarks._common import (
    cpu_seconds,
    limit_threads,
    require,
    require_trainer,
    result_or_skip_reason,
    skip_if_missing,
)

# name → (algo, config changes). The actor/learner is DQN with actor processes.
THROUGHPUT_RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "dqn": ("dqn", {"total_steps": 20_000}),
    "iqn": ("iqn", {"total_steps": 10_000}),
    "sac": ("sac", {"total_steps": 3_000}),
    "dqn-actors-1": ("dqn", {"total_steps": 20_000, "actors": 1}),
    "dqn-actors-2": ("dqn", {"total_steps": 20_000, "actors": 2}),
}


def run_trainer(algo: str, **changes: Any) -> dict[str, Any]:
    """`rlbench.trainers.train(algo, **changes)` without progress output or run files."""
    trainers = require("rlbench.trainers")
    require_trainer(algo)
    if changes.get("actors", 0) >= 1:
        require("rlbench.trainers.actor_learner")
    limit_threads()
    return trainers.train(algo, progress=False, **changes)


def _throughput(algo: str, changes: dict[str, Any]) -> dict[str, float]:
    """Env steps per wall second and per CPU second (all processes) of one short run."""
    start = cpu_seconds()
    summary = run_trainer(
        algo, learning_starts=1_000, eval_interval=changes["total_steps"], eval_episodes=1,
        **changes,
    )
    cpu = cpu_seconds() - start
    return {"sps": float(summary["sps"]), "cpu_sps": summary["steps"] / cpu}


class TrainingThroughput:
    """Speed of a short run per trainer that spends most of its steps past `learning_starts`
    (1,000), so it measures the steady acting + updating loop. Higher is better.

    All runs happen once, in `setup_cache`, back to back; both numbers come from that run.
    """

    params = [list(THROUGHPUT_RUNS)]
    param_names = ["trainer"]
    timeout = 900

    def setup_cache(self) -> dict[str, dict[str, float] | str]:
        """trainer → {"sps", "cpu_sps"}, or why it was skipped (not in this commit)."""
        return {trainer: result_or_skip_reason(_throughput, algo, changes)
                for trainer, (algo, changes) in THROUGHPUT_RUNS.items()}

    setup_cache.timeout = 3600  # type: ignore[attr-defined]

    def setup(self, results: dict[str, Any], trainer: str) -> None:
        skip_if_missing(results[trainer])

    def track_sps(self, results: dict[str, Any], trainer: str) -> float:
        """Env steps per wall second (the run record's `sps`)."""
        return results[trainer]["sps"]

    track_sps.unit = "env steps/s"  # type: ignore[attr-defined]

    def track_cpu_sps(self, results: dict[str, Any], trainer: str) -> float:
        """Env steps per CPU second summed over the run's processes: the cost of a step,
        nearly independent of other load on the machine (for the actor/learner it is an
        efficiency, not a speed: its processes run in parallel)."""
        return results[trainer]["cpu_sps"]

    track_cpu_sps.unit = "env steps/CPU-s"  # type: ignore[attr-defined]

    # The gates. asv flags a *rise* of a number as a regression, so a slowdown must make a
    # number rise: seconds per 1,000 env steps (1000 / sps). `asv continuous -f 1.1
    # -b seconds_per` exits 1 when a commit is >10% slower; the sps rows above cannot fail.
    def track_seconds_per_1k_steps(self, results: dict[str, Any], trainer: str) -> float:
        """Wall seconds per 1,000 env steps (the run record's sps inverted): lower is better."""
        return 1000.0 / results[trainer]["sps"]

    track_seconds_per_1k_steps.unit = "s / 1k env steps"  # type: ignore[attr-defined]

    def track_cpu_seconds_per_1k_steps(self, results: dict[str, Any], trainer: str) -> float:
        """CPU seconds (all processes) per 1,000 env steps: the gate to trust on a busy
        machine. Lower is better."""
        return 1000.0 / results[trainer]["cpu_sps"]

    track_cpu_seconds_per_1k_steps.unit = "CPU-s / 1k env steps"  # type: ignore[attr-defined]


# name → (algo, env, total steps, eval interval, best return, threshold). Budgets are the
# trainers' documented ones for solving the task, so regret ≈ 0 is reachable; the best returns
# are the envs' maxima (CartPole-v1: 500 per episode; Pendulum-v1: 0, unreachable, ≈ −140 is
# optimal in practice); thresholds are the usual "solved" levels.
LEARNING_RUNS: dict[str, tuple[str, str, int, int, float, float]] = {
    "dqn-CartPole-v1": ("dqn", "CartPole-v1", 100_000, 10_000, 500.0, 475.0),
    "iqn-CartPole-v1": ("iqn", "CartPole-v1", 100_000, 10_000, 500.0, 475.0),
    "sac-Pendulum-v1": ("sac", "Pendulum-v1", 15_000, 2_500, 0.0, -200.0),
}


class LearningProgress:
    """What a run reached, tracked so that lower is better (asv's direction).

    One training run per case (seed 0, evaluation: 10 episodes through
    `rlbench.evaluation.evaluate`); both numbers come from the same run.
    """

    params = [list(LEARNING_RUNS)]
    param_names = ["case"]
    timeout = 1800

    def setup_cache(self) -> dict[str, dict[str, Any] | str]:
        """Each case's summary, or why it was skipped (a trainer not in this commit)."""
        return {
            case: result_or_skip_reason(
                run_trainer, algo, env_id=env_id, total_steps=steps, eval_interval=interval,
                eval_episodes=10, seed=0,
            )
            for case, (algo, env_id, steps, interval, _, _) in LEARNING_RUNS.items()
        }

    setup_cache.timeout = 3600  # type: ignore[attr-defined]

    def setup(self, results: dict[str, Any], case: str) -> None:
        skip_if_missing(results[case])

    def track_regret(self, results: dict[str, Any], case: str) -> float:
        """Best return − final evaluation return (mean over 10 episodes)."""
        best = LEARNING_RUNS[case][4]
        return best - float(results[case]["final_eval_return"])

    track_regret.unit = "return"  # type: ignore[attr-defined]

    def track_steps_to_threshold(self, results: dict[str, Any], case: str) -> float:
        """First evaluation step whose mean return reaches the threshold; budget + one eval
        interval when it never does (so "not solved" still ranks below "solved late")."""
        _, _, steps, interval, _, threshold = LEARNING_RUNS[case]
        for point in results[case]["eval_history"]:
            if point["return_mean"] >= threshold:
                return float(point["step"])
        return float(steps + interval)

    track_steps_to_threshold.unit = "env steps"  # type: ignore[attr-defined]
