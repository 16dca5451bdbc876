"""A gymnasium env that replays a script of (reward, terminated, truncated) steps — for testing
evaluation accounting against hand-computed answers."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class ScriptedEnv(gym.Env):
    """Episode i replays `episodes[i]`: a list of (reward, terminated, truncated) steps.

    After an episode's script runs out it keeps giving reward 0 with no end (a policy in an
    env without a time limit), which exercises the evaluation's safety cap.
    """

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, episodes: list[list[tuple[float, bool, bool]]]) -> None:
        self.episodes = episodes
        self.episode = -1
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        script = self.episodes[self.episode]
        reward, terminated, truncated = script[self.t] if self.t < len(script) else (0.0, False, False)
        self.t += 1
        return np.zeros(1, np.float32), reward, terminated, truncated, {}
