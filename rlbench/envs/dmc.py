"""dm_control tasks behind the Gymnasium API.

* observations: the task's observation dict flattened (in key order) to one float32 vector;
* actions: ``Box(-1, 1)``, mapped affinely onto the task's action spec;
* the time limit ends an episode with ``truncated=True, terminated=False`` (dm_control marks
  it with discount 1.0); a true terminal state (discount 0.0) gives ``terminated=True``;
* ``reset(seed=s)`` reloads the task with ``random=s``, so the same seed gives the same episode.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np

# No display exists on our machines and rlbench never renders.
os.environ.setdefault("MUJOCO_GL", "disable")


def _flat_size(spec: Any) -> int:
    return int(np.prod(spec.shape)) if spec.shape else 1


class DMCEnv(gym.Env):
    """One dm_control task (``suite.load(domain, task)``) as a Gymnasium env."""

    metadata = {"render_modes": []}

    def __init__(self, domain: str, task: str, seed: int | None = None) -> None:
        from dm_control import suite

        if (domain, task) not in suite.ALL_TASKS:
            known = ", ".join(f"dmc:{d}-{t}" for d, t in suite.ALL_TASKS[:8])
            raise ValueError(
                f"unknown dm_control task dmc:{domain}-{task}; e.g. {known}, ... "
                "(see dm_control.suite.ALL_TASKS)"
            )
        self._suite, self.domain, self.task = suite, domain, task
        self._env = self._load(seed)
        spec = self._env.action_spec()
        self._low = spec.minimum.astype(np.float64)
        self._high = spec.maximum.astype(np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=spec.shape, dtype=np.float32)
        obs_dim = sum(_flat_size(s) for s in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)

    def _load(self, seed: int | None):
        return self._suite.load(self.domain, self.task, task_kwargs={"random": seed})

    def map_action(self, action: Any) -> np.ndarray:
        """[-1, 1] → the task's [minimum, maximum] (clipped first)."""
        a = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"non-finite action {action!r} for dmc:{self.domain}-{self.task}")
        a = np.clip(a, -1.0, 1.0)
        return self._low + (a + 1.0) * 0.5 * (self._high - self._low)

    def _flatten(self, observation: dict) -> np.ndarray:
        return np.concatenate(
            [np.asarray(v, dtype=np.float32).reshape(-1) for v in observation.values()]
        )

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env = self._load(seed)
        ts = self._env.reset()
        return self._flatten(ts.observation), {}

    def step(self, action: Any):
        ts = self._env.step(self.map_action(action))
        # Stepping past the end makes dm_control start a new episode (reward None): that is
        # the caller's bug, but it must not crash the adapter; report reward 0.
        reward = 0.0 if ts.reward is None else float(ts.reward)
        terminated = truncated = False
        if ts.last():
            terminated = ts.discount == 0.0
            truncated = not terminated
        return self._flatten(ts.observation), reward, terminated, truncated, {}

    @property
    def physics(self):
        return self._env.physics
