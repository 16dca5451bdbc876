"""The storage law every training loop must keep: its replay buffer holds exactly the env's
transitions, in order. Replaying the stored actions in a fresh env with the run's seed must
reproduce each stored row's obs, reward, next_obs and flags, and an episode's last row must
carry the env's final observation (not the next episode's reset observation)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlbench.envs import make
from rlbench.types import Batch


def assert_buffer_replays_the_env(stored: Batch, env_id: str, seed: int, where: str,
                                  to_env: Callable[[np.ndarray], Any] = lambda a: a) -> int:
    """Check `stored` (rows in write order) against a replay of its actions; return the
    number of episode ends it crossed. `to_env` maps a stored action to the env's action
    (SAC stores actions in [-1, 1] and rescales them for the env)."""
    env = make(env_id, seed=seed)
    obs, _ = env.reset()
    ends = 0
    for i in range(len(stored.reward)):
        row = f"{where}: stored row {i}"
        np.testing.assert_array_equal(
            stored.obs[i], np.asarray(obs, np.float32).reshape(stored.obs[i].shape),
            err_msg=f"{row}: obs is not the observation the env was in "
                    + ("(the previous row ended an episode: the loop did not reset the env "
                       "there)" if i and (stored.terminated[i - 1] or stored.truncated[i - 1])
                       else "(obs/next_obs mixed up, or the loop does not carry next_obs over)"))
        action = stored.action[i]
        next_obs, reward, terminated, truncated, _ = env.step(to_env(np.asarray(action)))
        assert np.isclose(stored.reward[i], reward, rtol=1e-6, atol=1e-6), (
            f"{row}: reward {stored.reward[i]}, the env gave {reward}")
        np.testing.assert_array_equal(
            stored.next_obs[i], np.asarray(next_obs, np.float32).reshape(stored.obs[i].shape),
            err_msg=f"{row}: next_obs is not the env's next observation"
                    + (" (at an episode end: the reset observation was stored instead of the "
                       "final one)" if terminated or truncated else ""))
        assert (bool(stored.terminated[i]), bool(stored.truncated[i])) == (terminated, truncated), (
            f"{row}: stored terminated={bool(stored.terminated[i])}, "
            f"truncated={bool(stored.truncated[i])}; the env said {terminated}, {truncated}")
        if terminated or truncated:
            ends += 1
            obs, _ = env.reset()
        else:
            obs = next_obs
    return ends
