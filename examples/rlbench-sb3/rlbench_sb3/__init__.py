"""Stable-Baselines3 and sbx trainers for rlbench, registered through the entry-point group
``rlbench.trainers``: ``sb3-dqn``, ``sb3-sac``, ``sbx-dqn``, ``sbx-sac``.

Importing this package imports neither SB3 nor sbx (listing or loading a spec stays cheap);
``make`` imports the library when a trainer is built.
"""

from __future__ import annotations

from typing import Any

from rlbench.api import TrainerSpec
from rlbench_sb3.configs import DQNConfig, SACConfig, SbxDQNConfig, SbxSACConfig

__all__ = ["SB3_DQN", "SB3_SAC", "SBX_DQN", "SBX_SAC",
           "DQNConfig", "SACConfig", "SbxDQNConfig", "SbxSACConfig"]


def _make(library: str, algo: str, values: str) -> Any:
    """``make(config)`` for `TrainerSpec`: builds ``<library>.<algo>`` on first use."""

    def make(config: Any) -> Any:
        from rlbench_sb3 import trainer

        return trainer.build(library, algo, config, getattr(trainer, values))

    return make


# `rlbench check` probe runs are a few thousand steps; SB3's defaults are for 1e5+ step runs.
# The overrides change only rates, schedules and sizes; the algorithms are untouched.
# DQN: with SB3's target update every 10k steps the target network would never update, and
# a 1e-4 learning rate at one update per 4 steps leaves the probe values unconverged.
DQN_CHECK_OVERRIDES: dict[str, Any] = {
    "learning_rate": 1e-3, "train_freq": 1, "target_update_interval": 100,
    "buffer_size": 10_000, "exploration_fraction": 0.5,
}
# SAC: SB3's temperature starts at 1.0 and, at lr 3e-4, is still 0.57 after 1,900 updates;
# its entropy bonus then lifts probe 3's soft V(0) to 0.69 (gamma 0.5, expected 0.5 ± 0.1).
# Starting it at 0.1 with lr 1e-3 (rlbench's own SAC starts at 0.1) leaves 0.02 by the end.
SAC_CHECK_OVERRIDES: dict[str, Any] = {
    "learning_rate": 1e-3, "ent_coef": "auto_0.1", "buffer_size": 10_000, "batch_size": 64,
}
# sbx DQN: flax starts biases at zero, and the probes' observation is often 0, so there the
# Q-network's output is its last bias alone, which Adam moves by about the learning rate per
# update: at 1e-3 probe:timelimit's V(0) reached only 1.45 of 2 in 2,000 steps (SB3's torch
# init, non-zero biases, had 2.0 by 1,000). 3e-3 (rlbench's own DQN probe rate) gives it time.
SBX_DQN_CHECK_OVERRIDES: dict[str, Any] = {**DQN_CHECK_OVERRIDES, "learning_rate": 3e-3}
DQN_CHECK_STEPS = 2_000
SAC_CHECK_STEPS = 1_500  # ~25 ms of CPU per SAC step here: the battery runs 9 of these

SB3_DQN = TrainerSpec(
    name="sb3-dqn", action_kinds=frozenset({"discrete"}), config=DQNConfig,
    make=_make("stable_baselines3", "DQN", "sb3_dqn_values"),
    summary="Stable-Baselines3 DQN (torch), SB3's defaults", backend="sb3",
    check_overrides=DQN_CHECK_OVERRIDES, check_steps=DQN_CHECK_STEPS,
)
SB3_SAC = TrainerSpec(
    name="sb3-sac", action_kinds=frozenset({"continuous"}), config=SACConfig,
    make=_make("stable_baselines3", "SAC", "sb3_sac_values"),
    summary="Stable-Baselines3 SAC (torch), SB3's defaults", backend="sb3",
    check_overrides=SAC_CHECK_OVERRIDES, check_steps=SAC_CHECK_STEPS,
)
SBX_DQN = TrainerSpec(
    name="sbx-dqn", action_kinds=frozenset({"discrete"}), config=SbxDQNConfig,
    make=_make("sbx", "DQN", "sbx_dqn_values"),
    summary="sbx DQN (JAX), sbx's defaults", backend="sbx",
    check_overrides=SBX_DQN_CHECK_OVERRIDES, check_steps=DQN_CHECK_STEPS,
)
SBX_SAC = TrainerSpec(
    name="sbx-sac", action_kinds=frozenset({"continuous"}), config=SbxSACConfig,
    make=_make("sbx", "SAC", "sbx_sac_values"),
    summary="sbx SAC (JAX), sbx's defaults", backend="sbx",
    check_overrides=SAC_CHECK_OVERRIDES, check_steps=SAC_CHECK_STEPS,
)
