"""The one evaluation protocol every trainer and report uses.

An episode completes when the environment says ``terminated`` *or* ``truncated``: a time
limit is the end of an evaluation episode (dm_control swingup episodes are exactly 1000
steps and never terminate). Returns are raw environment rewards, whatever reward scale
training used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import gymnasium as gym

from rlbench.envs import make
from rlbench.faults import active_faults
from rlbench.types import EvalResult, Policy

EVAL_SEED_OFFSET = 10_000
"""Trainers evaluate with seed = training seed + this offset: evaluation episodes never
replay the training env's episode seeds, and every trainer evaluates the same episodes."""


def _ends_on_either(terminated: bool, truncated: bool) -> bool:
    return terminated or truncated


def _ends_on_terminated_only(terminated: bool, truncated: bool) -> bool:
    # FAULT eval-truncation-ignored: time-limit episodes never complete.
    return terminated


def evaluate(
    policy: Policy,
    env_id: str | gym.Env,
    episodes: int,
    seed: int,
    *,
    max_episode_steps: int = 100_000,
    faults: Iterable[str] = (),
) -> EvalResult:
    """Run `episodes` full episodes of `policy` and report raw returns and lengths.

    `env_id` is an rlbench env id (a fresh env seeded with `seed` is built) or an env.
    The first reset uses `seed`; later resets continue the env's RNG, so the whole
    evaluation is reproducible. `max_episode_steps` is only a safety net for envs without
    a time limit: an episode cut there is reported but not counted as completed.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = make(env_id, seed=seed) if isinstance(env_id, str) else env_id
    episode_over = (
        _ends_on_terminated_only
        if "eval-truncation-ignored" in active_faults(faults)
        else _ends_on_either
    )
    returns: list[float] = []
    lengths: list[int] = []
    completed = 0
    try:
        obs, _ = env.reset(seed=seed)
        for episode in range(episodes):
            if episode:
                obs, _ = env.reset()
            total, length, done = 0.0, 0, False
            while not done and length < max_episode_steps:
                obs, reward, terminated, truncated, _ = env.step(policy(obs))
                reward = float(reward)
                if not math.isfinite(reward):
                    raise ValueError(
                        f"environment returned a non-finite reward ({reward}) in evaluation "
                        f"episode {episode} at step {length}"
                    )
                total += reward
                length += 1
                done = episode_over(bool(terminated), bool(truncated))
            completed += int(done)
            returns.append(total)
            lengths.append(length)
    finally:
        if isinstance(env_id, str):
            env.close()
    return EvalResult(tuple(returns), tuple(lengths), completed, episodes)


def random_policy(env: gym.Env, seed: int) -> Policy:
    """A uniform-random policy over `env`'s action space (seeded, reproducible)."""
    space = env.action_space
    space.seed(seed)
    return lambda obs: space.sample()

