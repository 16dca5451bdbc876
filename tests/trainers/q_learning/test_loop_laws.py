"""Laws of the single-process DQN/IQN loop (`q_learning.fit`) that no number-moving test pins.

* Acting follows the epsilon schedule step for step: the action chosen after k env steps
  uses epsilon_at(k), so the very first action uses epsilon_start and epsilon_min is first
  used exactly after exploration_fraction * total_steps steps (an off-by-one shifts the
  whole schedule by a step and never uses epsilon_start).
* The run's records say what happened: an episode's logged return is the sum of its
  rewards, evaluations happen at multiples of eval_interval and at the last step only,
  `metrics()` reports the live counts and the last evaluation, and `finish()` stores the
  transitions still pending (total_steps need not be a multiple of train_frequency).
* The buffer holds exactly the env's transitions in order (`tests/transitions.py`): obs and
  next_obs not swapped, an episode's last next_obs the final observation, flags as the env
  gave them.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from rlbench.config import DQNConfig
from rlbench.schedules import decay_steps, epsilon_at
from rlbench.trainers.dqn_torch import DQNAgent
from rlbench.trainers.q_learning import fit


def test_fit_acts_with_the_epsilon_of_the_steps_already_taken() -> None:
    used: list[float] = []

    class RecordingAgent(DQNAgent):
        def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
            used.append(epsilon)
            return super().act(obs, epsilon, rng)

    config = DQNConfig(env_id="probe:1", total_steps=40, learning_starts=41,
                       exploration_fraction=0.5, epsilon_start=1.0, epsilon_min=0.1,
                       hidden_sizes=(8,), eval_interval=40, eval_episodes=1, seed=0)
    fit(config, RecordingAgent, "dqn", progress=False)
    d = decay_steps(config.total_steps, config.exploration_fraction)
    want = [epsilon_at(k, config.total_steps, 1.0, 0.1, 0.5) for k in range(config.total_steps)]
    assert used[0] == config.epsilon_start, (
        f"the first action used epsilon {used[0]}, not epsilon_start {config.epsilon_start}")
    assert used[d] == config.epsilon_min and used[d - 1] > config.epsilon_min, (
        f"epsilon_min must first be used after exactly {d} steps; got {used[d - 1:d + 1]}")
    np.testing.assert_allclose(used, want, rtol=0, atol=1e-12,
                               err_msg="action k (after k env steps) must use epsilon_at(k)")


@pytest.mark.parametrize(("env_id", "steps", "min_ends"),
                         [("CartPole-v1", 400, 5), ("Acrobot-v1", 1_100, 2)])
@pytest.mark.parametrize("algo", ["dqn", "iqn"])
def test_the_buffer_holds_exactly_the_envs_transitions_in_order(
        algo: str, env_id: str, steps: int, min_ends: int) -> None:
    # CartPole under near-random early actions terminates every ~20 steps; Acrobot under
    # them runs into its 500-step time limit (truncations). No update is due
    # (learning_starts > steps). advance(1) per step: resuming must carry the observation
    # over exactly, also across an episode end at a slice boundary.
    from rlbench.config import IQNConfig
    from rlbench.trainers.iqn_torch import IQNAgent
    from rlbench.trainers.q_learning.loop import QLearningTrainer
    from tests.transitions import assert_buffer_replays_the_env

    cls, agent_cls = (DQNConfig, DQNAgent) if algo == "dqn" else (IQNConfig, IQNAgent)
    config = cls(env_id=env_id, total_steps=steps, learning_starts=steps + 1,
                 train_frequency=4, hidden_sizes=(8,), eval_interval=steps, eval_episodes=1,
                 buffer_size=2_000, seed=3)
    trainer = QLearningTrainer(config, agent_cls, algo)
    try:
        for _ in range(steps):  # a multiple of train_frequency: every row is flushed
            trainer.advance(1)
        stored = trainer.buffer.get(np.arange(len(trainer.buffer)))
    finally:
        trainer.close()
    assert len(stored.reward) == steps
    ends = assert_buffer_replays_the_env(stored, config.env_id, config.seed, f"{algo} loop")
    assert ends >= min_ends, f"only {ends} episode ends in {steps} steps: the law was barely tested"


def test_the_run_records_say_what_happened(tmp_path) -> None:
    import json

    from rlbench.schedules import epsilon_at
    from rlbench.trainers.q_learning.loop import QLearningTrainer

    # CartPole pays +1 per step, so an episode's return is its length: the gap between the
    # steps at which consecutive episodes ended. No update is due (learning_starts > steps);
    # 250 is not a multiple of train_frequency 4, so 2 transitions are pending at the end.
    config = DQNConfig(env_id="CartPole-v1", total_steps=250, learning_starts=1_000,
                       train_frequency=4, eval_interval=100, eval_episodes=1, log_interval=50,
                       hidden_sizes=(8,), seed=0)
    trainer = QLearningTrainer(config, DQNAgent, "dqn", out_dir=tmp_path)
    trainer.advance(config.total_steps)
    metrics = trainer.metrics()
    summary = trainer.finish()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]

    episodes = [r for r in rows if r["kind"] == "episode"]
    ends = [0] + [r["step"] for r in episodes]
    assert len(episodes) >= 5
    for row, start in zip(episodes, ends):
        assert row["ret"] == row["length"] == row["step"] - start, (
            f"episode ending at step {row['step']}: return {row['ret']}, length {row['length']}, "
            f"but it ran {row['step'] - start} +1-reward steps")
    assert [e["step"] for e in summary["eval_history"]] == [100, 200, 250], (
        "evaluate at every multiple of eval_interval and at total_steps, nowhere else")
    recent = [r["ret"] for r in episodes][-20:]
    assert metrics == pytest.approx({
        "updates": 0.0, "episodes": float(len(episodes)),
        "epsilon": epsilon_at(250, 250, config.epsilon_start, config.epsilon_min,
                              config.exploration_fraction),
        "episode_return": float(np.mean(recent)),
        "eval_return": summary["eval_history"][-1]["return_mean"],
    })
    assert summary["buffer"]["size"] == summary["buffer"]["total_writes"] == 250, (
        "finish() must store the transitions still pending")


def test_metrics_report_the_last_evaluation_and_the_recent_episodes() -> None:
    from rlbench.runs import EpisodeStats, RunRecorder
    from rlbench.trainers.q_learning.loop import q_learning_metrics
    from rlbench.types import EvalResult

    # Distinct values everywhere, so an index or window slip shows (a short real run's
    # evaluations of an unchanged network are all equal and cannot tell [-1] from [-2]).
    recorder = RunRecorder(None, "dqn", "torch", DQNConfig())
    for step, ret in ((100, 10.0), (200, 30.0), (250, 70.0)):
        recorder.record_eval(step, EvalResult(returns=(ret,), lengths=(int(ret),), completed=1, episodes=1))
    episodes = EpisodeStats(window=2)
    for ret in (1.0, 2.0, 4.0):
        episodes.finished(ret)
    out = q_learning_metrics({"loss": 0.5}, 7, episodes, 0.25, recorder)
    assert out == {"loss": 0.5, "updates": 7.0, "episodes": 3.0, "epsilon": 0.25,
                   "episode_return": 3.0, "eval_return": 70.0}, (
        "metrics must be the last evaluation (70) and the mean of the last `window` episodes (3)")


def test_evaluation_is_not_seeded_like_training() -> None:
    # Evaluated from the training env's own start states, a policy is graded on episodes
    # it may have memorised; the evaluation env must be seeded apart.
    from rlbench.envs import make
    from rlbench.trainers.q_learning.agent import evaluate_agent

    config = DQNConfig(env_id="CartPole-v1", eval_episodes=1, seed=3)
    seen: list[np.ndarray] = []

    class Spy:
        def greedy_action(self, obs: np.ndarray) -> int:
            seen.append(np.array(obs))
            return 0

    evaluate_agent(Spy(), config)  # type: ignore[arg-type]
    train_start, _ = make(config.env_id).reset(seed=config.seed)
    assert seen, "the evaluation never acted"
    assert not np.array_equal(seen[0], train_start), (
        "the evaluation episode starts where the training env's first episode starts")
