"""Exploration and learning-rate schedules as pure functions of the step.

Pure functions are trivially testable (hypothesis checks monotonicity, bounds and end
points) and shared by every backend: the PyTorch trainers wrap them in a LambdaLR, the
actor/learner publishes `epsilon_at(step)` with the weights, JAX can call them on traced
integers because they only use arithmetic, min and max.
"""

from __future__ import annotations

import math


def linear(start: float, end: float, duration: int, step: int) -> float:
    """`start` at step 0, straight line to `end` at `duration`, then `end` forever."""
    if duration <= 0:
        return end
    frac = min(max(step / duration, 0.0), 1.0)
    # The convex-combination form hits `end` exactly at frac == 1 (start + frac*(end-start)
    # can miss it by a rounding error, and "reaches epsilon_min" is tested with ==).
    return (1.0 - frac) * start + frac * end


def epsilon_at(
    step: int, total_steps: int, start: float, end: float, exploration_fraction: float
) -> float:
    """Epsilon-greedy schedule: linear decay from `start` to `end` over the first
    `exploration_fraction * total_steps` env steps (reached exactly at that step)."""
    return linear(start, end, decay_steps(total_steps, exploration_fraction), step)


def decay_steps(total_steps: int, exploration_fraction: float) -> int:
    return int(round(exploration_fraction * total_steps))


LR_SCHEDULES = ("constant", "linear", "cosine")


def lr_factor(kind: str, update: int, total_updates: int, final_fraction: float = 0.0) -> float:
    """Multiplier on the base learning rate after `update` optimizer steps.

    constant: 1; linear: 1 → `final_fraction` over `total_updates`; cosine: half-cosine
    from 1 to `final_fraction`. Past `total_updates` the final value holds.
    """
    if kind == "constant":
        return 1.0
    if total_updates <= 0:
        return final_fraction
    frac = min(max(update / total_updates, 0.0), 1.0)
    if kind == "linear":
        return (1.0 - frac) + frac * final_fraction
    if kind == "cosine":
        return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr schedule {kind!r}; choose one of {', '.join(LR_SCHEDULES)}")
