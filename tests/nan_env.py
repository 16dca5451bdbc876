"""CartPole whose reward turns NaN after a few steps: a real way to crash an actor process
(the replay buffer rejects the transition with a ValueError). Importing this module
registers ``tests.nan_env:NaNRewardCartPole-v0``; gymnasium imports it by that id, so spawned
actor processes find it too."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

NAN_AFTER = 150  # steps (per env instance) before the first NaN reward


class NaNRewardCartPole(gym.Wrapper):
    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.steps = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return obs, np.nan if self.steps > NAN_AFTER else reward, terminated, truncated, info


if "NaNRewardCartPole-v0" not in gym.registry:
    gym.register("NaNRewardCartPole-v0", entry_point=NaNRewardCartPole)
