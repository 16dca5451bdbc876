"""The evaluation protocol: completion on terminated OR truncated, raw returns, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from rlbench.envs import make
from rlbench.evaluation import evaluate, random_policy
from tests.scripted_env import ScriptedEnv


@pytest.mark.detects("eval-truncation-ignored")
def test_evaluate_dmc_random_policy_completes_1000_step_episodes() -> None:
    """Detector for eval-truncation-ignored on the real task: swingup never terminates, so
    every episode must end by truncation at exactly 1000 steps."""
    env_id = "dmc:cartpole-swingup"
    result = evaluate(random_policy(make(env_id), 0), env_id, episodes=2, seed=0,
                      max_episode_steps=1500)
    assert result.completed == 2
    assert result.lengths == (1000, 1000)
    assert all(0.0 <= r <= 1000.0 for r in result.returns)


@pytest.mark.detects("eval-truncation-ignored")
def test_evaluate_truncated_episodes_complete() -> None:
    episodes = [[(1.0, False, False)] * 4 + [(1.0, False, True)], [(2.0, True, False)]]
    result = evaluate(lambda obs: 0, ScriptedEnv(episodes), episodes=2, seed=0)
    assert result.completed == 2
    assert result.lengths == (5, 1)
    assert result.returns == (5.0, 2.0)


def test_evaluate_cartpole_returns_are_raw_and_reproducible() -> None:
    a = evaluate(random_policy(make("CartPole-v1"), 1), "CartPole-v1", 5, seed=3)
    b = evaluate(random_policy(make("CartPole-v1"), 1), "CartPole-v1", 5, seed=3)
    assert a == b and a.completed == 5
    # CartPole pays +1 per step: the raw return is the episode length.
    assert a.returns == tuple(float(n) for n in a.lengths)


def test_evaluate_episode_cut_by_safety_cap_is_not_completed() -> None:
    result = evaluate(lambda obs: 0, ScriptedEnv([[]]), episodes=1, seed=0, max_episode_steps=7)
    assert result.completed == 0 and result.lengths == (7,)


def test_evaluate_rejects_nan_reward_with_clear_error() -> None:
    env = ScriptedEnv([[(1.0, False, False), (float("nan"), False, False)]])
    with pytest.raises(ValueError, match="non-finite reward.*episode 0 at step 1"):
        evaluate(lambda obs: 0, env, episodes=1, seed=0)


def test_evaluate_rejects_zero_episodes() -> None:
    with pytest.raises(ValueError, match="episodes"):
        evaluate(lambda obs: 0, "probe:1", episodes=0, seed=0)


def test_evaluate_result_summary_fields() -> None:
    result = evaluate(lambda obs: 1, "probe:4", episodes=3, seed=0)
    d = result.to_dict()
    assert d["return_mean"] == 1.0 and d["completed"] == 3 and d["lengths"] == [1, 1, 1]
    assert np.isclose(result.std_return, 0.0)


def test_evaluate_sums_rewards_in_float64_whatever_their_dtype() -> None:
    # numpy 2 keeps float32 + Python float in float32 (NEP 50): an env that returns
    # np.float32 rewards would otherwise have its returns summed in float32.
    step = (np.float32(0.1), False, False)
    env = ScriptedEnv([[step] * 999 + [(np.float32(0.1), True, False)]])
    result = evaluate(random_policy(env, 0), env, episodes=1, seed=0)
    want = 1000 * float(np.float32(0.1))
    assert result.returns[0] == pytest.approx(want, rel=1e-12, abs=0), (
        f"return {result.returns[0]!r} is not the float64 sum {want!r} of 1000 float32 rewards")


def test_q_agent_evaluation_is_not_seeded_like_training() -> None:
    # Evaluated from the training env's own start states, a policy is graded on episodes
    # it may have memorised; evaluate_agent must use another seed.
    pytest.importorskip("torch")
    import torch

    from rlbench.config import DQNConfig
    from rlbench.trainers.dqn_torch import DQNAgent
    from rlbench.trainers.q_learning import evaluate_agent

    config = DQNConfig(env_id="CartPole-v1", seed=3, eval_episodes=1)
    agent = DQNAgent(config, (4,), 2, torch.device("cpu"))
    seen: list[np.ndarray] = []
    agent.greedy_action = lambda obs: seen.append(np.array(obs)) or 0
    evaluate_agent(agent, config)
    train_start, _ = make("CartPole-v1").reset(seed=config.seed)
    assert not np.array_equal(seen[0], train_start), (
        "the evaluation episode starts where the training env's first episode starts")
