"""CartPole whose reward turns NaN after a few steps: a real way to crash an actor process
(the replay buffer rejects the transition with a ValueError). Importing this module
registers ``tests.nan_env:NaNRewardCartPole-v0``; gymnasium imports it by that id, so spawned
actor processes find it too."""

from __future__ import annotations

import gymnasium as gym

from tests.odd_envs import NaNAfter

NAN_AFTER = 150  # steps (per env instance) before the first NaN reward

if "NaNRewardCartPole-v0" not in gym.registry:
    gym.register("NaNRewardCartPole-v0", entry_point=NaNAfter,
                 kwargs={"env_id": "CartPole-v1", "field": "reward", "after": NAN_AFTER})
