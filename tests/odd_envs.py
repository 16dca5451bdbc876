"""Pendulums with observations a trainer must cope with: a column-shaped float64 one (a
trainer flattens what it gets) and one that turns NaN (a trainer stops with an error
naming the step). Importing this module registers ``tests.odd_envs:ColumnObsPendulum-v0``
and ``tests.odd_envs:NaNObsPendulum-v0``."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

NAN_AFTER = 30  # steps (per env instance) before the first NaN observation


class ColumnObsPendulum(gym.ObservationWrapper):
    """Pendulum-v1 whose observation is a (3, 1) float64 column."""

    def __init__(self) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3, 1), np.float64)

    def observation(self, observation):
        return np.asarray(observation, np.float64).reshape(3, 1)


class NaNObsPendulum(gym.Wrapper):
    """Pendulum-v1 whose observations are NaN after `NAN_AFTER` steps (rewards stay finite)."""

    def __init__(self) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.steps = 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        return (np.full_like(obs, np.nan) if self.steps > NAN_AFTER else obs,
                reward, terminated, truncated, info)


for _name, _cls in (("ColumnObsPendulum-v0", ColumnObsPendulum), ("NaNObsPendulum-v0", NaNObsPendulum)):
    if _name not in gym.registry:
        gym.register(_name, entry_point=_cls, max_episode_steps=200)
