"""Golden returns of fixed-seed short DQN and IQN runs on CartPole-v1.

Tolerance: rtol = atol = 1e-6. On one machine a seeded run is bit-identical (see
tests/unit/test_q_learning.py::test_fit_same_seed_gives_identical_returns), so these values
move only when behaviour changes. What they protect against is an *unintended* change of the
training dynamics that still "runs and learns a bit": a reordered RNG stream, a changed
epsilon/LR/target schedule, a different update count, a changed loss or initialisation. Each
of those changes the trajectory and therefore the episode and evaluation returns far beyond
1e-6. An intended change is re-recorded with `pytest --update-golden` and the JSON diff is
reviewed. The values are platform-specific in the last bits (BLAS summation order); on a new
CPU type, re-record once and review that the returns stay in the same range.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from rlbench.config import DQNConfig, IQNConfig
from rlbench.trainers.dqn_torch import DQNAgent
from rlbench.trainers.iqn_torch import IQNAgent
from rlbench.trainers.q_learning import fit

RUN = dict(env_id="CartPole-v1", seed=0, total_steps=3_000, learning_starts=500,
           train_frequency=2, batch_size=64, eval_interval=1_000, eval_episodes=3,
           log_interval=500)


def golden_values(summary: dict) -> dict[str, float]:
    values = {f"eval_return_{e['step']}": e["return_mean"] for e in summary["eval_history"]}
    values["updates"] = summary["updates"]
    values["episodes"] = summary["episodes"]
    values["buffer_terminated_fraction"] = summary["buffer"]["terminated_fraction"]
    return values


@pytest.mark.parametrize(
    "algo, agent_cls, config",
    [("dqn", DQNAgent, DQNConfig(**RUN)), ("iqn", IQNAgent, IQNConfig(**RUN))],
)
def test_golden_torch_cartpole_short_run(algo, agent_cls, config, golden, tmp_path) -> None:
    summary, _ = fit(config, agent_cls, algo, tmp_path, progress=False)
    values = golden_values(summary)
    assert np.isfinite(list(values.values())).all()
    golden.check(f"{algo}_cartpole_3k", values, rtol=1e-6, atol=1e-6)
