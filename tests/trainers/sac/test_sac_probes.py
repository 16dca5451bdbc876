"""SAC on the continuous probe environments: known critic values and greedy actions.

Every probe shares observation and action shapes and one configuration, so the five runs
share one compiled update. Seeds are fixed (0) and a seeded run is deterministic, so these
tests cannot flake on one machine; the thresholds keep a wide margin for other platforms.
Measured (seed 0): every critic value within 0.01 of the known one (tolerance 0.1); greedy
actions 0.78 on probe 4 (threshold 0.5, optimum 1) and ±0.92 on probe 5 (threshold 0.7).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")  # needs the `jax` extra: skipped where it is not installed

import jax
import jax.numpy as jnp

from rlbench.config import SACConfig
from rlbench.trainers.sac_jax import SAC

pytestmark = pytest.mark.learning

GAMMA = 0.9
PROBE = SACConfig(
    hidden_sizes=(64, 64), batch_size=64, buffer_size=5_000, learning_starts=200,
    chunk_updates=8, policy_lr=1e-3, q_lr=1e-3, alpha_lr=1e-3, gamma=GAMMA,
    total_steps=1_500, eval_interval=1_500, eval_episodes=4,
)
ACTIONS = np.linspace(-0.9, 0.9, 7, dtype=np.float32)


def _train(probe: str) -> SAC:
    sac = SAC(PROBE.replace(env_id=f"probe:{probe}-continuous"))
    sac.advance(PROBE.total_steps)
    return sac


def _q(sac: SAC, obs: float) -> np.ndarray:
    """Both critics' values at `obs` for every action in ACTIONS: [2, len(ACTIONS)]."""
    o = jnp.full((len(ACTIONS), 1), obs, jnp.float32)
    q1, q2 = sac.model.critic(o, jnp.asarray(ACTIONS)[:, None])
    return np.stack([np.asarray(q1), np.asarray(q2)])


def _greedy(sac: SAC, obs: float) -> float:
    return float(sac.policy()(np.float32([obs]))[0])


def test_sac_probe1_constant_reward_value() -> None:
    sac = _train("1")
    np.testing.assert_allclose(_q(sac, 0.0), 1.0, atol=0.1)


def test_sac_probe2_observation_dependent_value() -> None:
    sac = _train("2")
    for obs in (-1.0, 1.0):
        np.testing.assert_allclose(_q(sac, obs), obs, atol=0.1)


def test_sac_probe3_discounted_soft_value() -> None:
    """Q(1, ·) = 1; Q(0, ·) = γ·E[Q(1, a') − α·log π(a'|1)] — SAC's soft value, which is
    γ = 0.9 plus γ·α·entropy (the learned α is small but not zero, so it is accounted for)."""
    sac = _train("3")
    np.testing.assert_allclose(_q(sac, 1.0), 1.0, atol=0.1)
    obs1 = jnp.ones((4096, 1), jnp.float32)
    _, log_prob = sac.model.actor.sample(obs1, jax.random.key(0))
    alpha = float(sac.model.temperature())
    soft_value = GAMMA * (1.0 - alpha * float(jnp.mean(log_prob)))
    np.testing.assert_allclose(_q(sac, 0.0), soft_value, atol=0.1)
    assert abs(soft_value - GAMMA) < 0.1  # and that is close to the plain discounted value


def test_sac_probe4_action_dependent_value_and_greedy_action() -> None:
    sac = _train("4")
    np.testing.assert_allclose(_q(sac, 0.0), np.broadcast_to(ACTIONS, (2, 7)), atol=0.1)
    # Optimum +1; the entropy bonus (alpha > 0) keeps the greedy action short of the edge.
    assert _greedy(sac, 0.0) > 0.5


@pytest.fixture(scope="module")
def probe5() -> SAC:
    return _train("5")  # once, for both observations


@pytest.mark.parametrize("obs", [-1.0, 1.0])
def test_sac_probe5_obs_and_action_dependent_value_and_greedy_action(probe5: SAC, obs: float) -> None:
    np.testing.assert_allclose(_q(probe5, obs), np.broadcast_to(ACTIONS * obs, (2, 7)), atol=0.1)
    assert _greedy(probe5, obs) * obs > 0.7  # optimum a = obs
