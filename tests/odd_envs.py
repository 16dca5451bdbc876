"""Envs with data a trainer must cope with: a Pendulum with a column-shaped float64
observation (a trainer flattens what it gets) and wrappers whose observation or reward
turns NaN after some steps (a trainer stops with an error naming the step). Importing this
module registers ``tests.odd_envs:ColumnObsPendulum-v0``,
``tests.odd_envs:NaNObsPendulum-v0``, ``tests.odd_envs:ShortCartPole-v0`` (CartPole cut
by a 7-step time limit: truncations within a few dozen steps) and
``tests.odd_envs:FreezingCartPole-v0`` (a CartPole whose `step` never returns after
`FREEZE_AFTER` steps: a hung simulator); ``tests.nan_env`` registers a NaN-reward CartPole."""

from __future__ import annotations

import time

import gymnasium as gym
import numpy as np

NAN_AFTER = 30  # steps (per env instance) before NaNObsPendulum's first NaN observation
SHORT_TIME_LIMIT = 7  # ShortCartPole's episode cut
FREEZE_AFTER = 100  # steps (per env instance) FreezingCartPole makes before hanging


class ColumnObsPendulum(gym.ObservationWrapper):
    """Pendulum-v1 whose observation is a (3, 1) float64 column."""

    def __init__(self) -> None:
        super().__init__(gym.make("Pendulum-v1"))
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (3, 1), np.float64)

    def observation(self, observation):
        return np.asarray(observation, np.float64).reshape(3, 1)


class NaNAfter(gym.Wrapper):
    """`env_id` whose observations (`field="obs"`) or rewards (`field="reward"`) are NaN
    after `after` steps of this instance; everything else stays as the env gives it."""

    def __init__(self, env_id: str, field: str, after: int) -> None:
        super().__init__(gym.make(env_id))
        if field not in ("obs", "reward"):
            raise ValueError(f"NaNAfter: field must be 'obs' or 'reward', got {field!r}")
        self.field, self.after, self.steps = field, after, 0

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if self.steps > self.after:
            if self.field == "obs":
                obs = np.full_like(obs, np.nan)
            else:
                reward = np.nan
        return obs, reward, terminated, truncated, info


class FreezeAfter(gym.Wrapper):
    """CartPole-v1 whose `step` blocks for good once this instance has made `FREEZE_AFTER`
    steps (killed with its process; nothing in it is polled)."""

    def __init__(self) -> None:
        super().__init__(gym.make("CartPole-v1"))
        self.steps = 0

    def step(self, action):
        if self.steps >= FREEZE_AFTER:
            while True:
                time.sleep(3600)
        self.steps += 1
        return self.env.step(action)


if "ColumnObsPendulum-v0" not in gym.registry:
    gym.register("ColumnObsPendulum-v0", entry_point=ColumnObsPendulum, max_episode_steps=200)
if "NaNObsPendulum-v0" not in gym.registry:
    gym.register("NaNObsPendulum-v0", entry_point=NaNAfter, max_episode_steps=200,
                 kwargs={"env_id": "Pendulum-v1", "field": "obs", "after": NAN_AFTER})
if "ShortCartPole-v0" not in gym.registry:
    gym.register("ShortCartPole-v0", entry_point="gymnasium.envs.classic_control:CartPoleEnv",
                 max_episode_steps=SHORT_TIME_LIMIT)
if "FreezingCartPole-v0" not in gym.registry:
    gym.register("FreezingCartPole-v0", entry_point=FreezeAfter)
