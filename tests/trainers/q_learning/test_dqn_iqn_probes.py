"""DQN and IQN learn the five probe environments ("Debugging RL without the agonizing
pain") and rlbench's time-limit probe: the Q-values land within 0.1 of the known values and
the greedy actions are right.

Each probe isolates one piece of the agent (constant fit, observation input, discounting with
a bootstrapped target network, action argmax, obs-conditioned argmax, bootstrapping through
a time-limit truncation), so a failure points at the broken piece. gamma is 0.5, so every
value that depends on it is far from what a broken discount gives: probe 3's V(0) = 0.5
(1 without the discount, 0.25 with it applied twice) and the time-limit probe's
1/(1 - gamma) = 2 (1 when the truncation is treated as terminal, a diverging value without
the discount) are all more than twice the tolerance apart. Budgets are a few seconds; the
runs are seeded and deterministic, and with ~1,000 updates on one-number observations the
errors end far below the 0.1 tolerance, so a correct agent does not come near it.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from rlbench.config import DQNConfig, IQNConfig
from rlbench.trainers.dqn_torch import DQNAgent
from rlbench.trainers.iqn_torch import IQNAgent
from rlbench.trainers.q_learning import fit

pytestmark = pytest.mark.learning

PROBE = dict(total_steps=1_200, learning_starts=200, train_frequency=1, batch_size=64,
             learning_rate=3e-3, hidden_sizes=(32, 32), target_update_interval=50,
             exploration_fraction=0.5, eval_interval=1_200, eval_episodes=2, gamma=0.5, seed=0)
# What the wrong values mean, for the probes whose values depend on gamma (0.5).
HINTS = {"3": " (V(0) = 1: discount dropped; 0.25: discount applied twice)",
         "timelimit": " (Q = 1: time-limit truncation treated as terminal; > 2: discount lost)"}
ALGOS = {"dqn": (DQNAgent, DQNConfig(**PROBE)),
         "iqn": (IQNAgent, IQNConfig(k_quantiles=256, **PROBE))}


def _expected(probe: str, gamma: float) -> tuple[np.ndarray, dict[float, np.ndarray]]:
    """(observations, {obs: Q-values per action}) from the probe docstrings."""
    if probe == "1":
        return np.array([0.0]), {0.0: np.array([1.0])}
    if probe == "2":
        return np.array([-1.0, 1.0]), {-1.0: np.array([-1.0]), 1.0: np.array([1.0])}
    if probe == "3":
        return np.array([0.0, 1.0]), {0.0: np.array([gamma]), 1.0: np.array([1.0])}
    if probe == "timelimit":
        return np.array([0.0]), {0.0: np.array([1.0 / (1.0 - gamma)])}
    if probe == "4":
        return np.array([0.0]), {0.0: np.array([-1.0, 1.0])}
    return np.array([-1.0, 1.0]), {-1.0: np.array([1.0, -1.0]), 1.0: np.array([-1.0, 1.0])}


@pytest.mark.parametrize("probe", ["1", "2", "3", "4", "5", "timelimit"])
@pytest.mark.parametrize("algo", ["dqn", "iqn"])
def test_probe_learned_values_and_greedy_actions(algo: str, probe: str) -> None:
    agent_cls, config = ALGOS[algo]
    config = config.replace(env_id=f"probe:{probe}")
    summary, agent = fit(config, agent_cls, algo, progress=False)
    observations, want = _expected(probe, config.gamma)
    q = agent.q_values(observations[:, None].astype(np.float32))
    for row, obs in zip(q, observations):
        np.testing.assert_allclose(row, want[obs], atol=0.1,
                                   err_msg=f"{algo} probe:{probe} obs={obs}{HINTS.get(probe, '')}")
        if len(want[obs]) > 1:
            assert agent.greedy_action(np.array([obs], np.float32)) == want[obs].argmax()
    if probe in ("4", "5"):  # the greedy policy collects the best reward every episode
        assert summary["final_eval_return"] == 1.0
