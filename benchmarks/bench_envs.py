"""Environment step cost: the floor under every trainer's steps/s."""

from __future__ import annotations

import numpy as np

from benchmarks._common import require

ENV_IDS = [
    "CartPole-v1",
    "dmc:cartpole-swingup",
    "probe:1",
    "probe:3",
    "probe:5",
    "probe:5-continuous",
]


class EnvStep:
    """One `env.step` with a random action, resetting at episode end as a trainer would."""

    params = [ENV_IDS]
    param_names = ["env_id"]

    def setup(self, env_id: str) -> None:
        envs = require("rlbench.envs")
        self.env = envs.make(env_id, seed=0)
        self.env.reset()
        # Actions drawn up front: the timer covers the env, not the action sampler.
        self.env.action_space.seed(0)
        self.actions = [self.env.action_space.sample() for _ in range(1024)]
        self.i = 0
        for _ in range(16):  # warm-up: first-call costs (dm_control physics, caches)
            self.time_step(env_id)

    def teardown(self, env_id: str) -> None:
        if hasattr(self, "env"):  # setup may have skipped
            self.env.close()

    def time_step(self, env_id: str) -> None:
        self.i = (self.i + 1) % len(self.actions)
        _, _, terminated, truncated, _ = self.env.step(self.actions[self.i])
        if terminated or truncated:
            self.env.reset()


class EnvReset:
    """`env.reset()`: paid once per episode (dm_control rebuilds physics state)."""

    params = [["CartPole-v1", "dmc:cartpole-swingup", "probe:1"]]
    param_names = ["env_id"]

    def setup(self, env_id: str) -> None:
        envs = require("rlbench.envs")
        self.env = envs.make(env_id, seed=0)
        self.env.reset()

    def teardown(self, env_id: str) -> None:
        if hasattr(self, "env"):  # setup may have skipped
            self.env.close()

    def time_reset(self, env_id: str) -> None:
        obs, _ = self.env.reset()
        np.asarray(obs)
