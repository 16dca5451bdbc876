"""Exploration and learning-rate schedules as pure functions of the step.

Pure functions are trivially testable (hypothesis checks monotonicity, bounds and end
points) and shared by every backend: the PyTorch trainers wrap them in a LambdaLR and the
actor/learner publishes `epsilon_at(step)` with the weights. They take Python numbers
(not traced JAX values): the schedules are evaluated outside any jitted function.
"""

from __future__ import annotations

import math


def linear(start: float, end: float, duration: int, step: int) -> float:
    """`start` at step 0, straight line to `end` at `duration`, then `end` forever."""
    if duration <= 0:
        return end
    frac = min(max(step / duration, 0.0), 1.0)
    # Both end points are returned exactly (epsilon_min is tested with ==). In between, the
    # form anchored at `end` is monotone in `frac` under rounding and the clamp keeps it inside
    # [start, end], so the schedule never wiggles by an ulp (the convex-combination form did
    # when start == end; hypothesis found it).
    if frac <= 0.0:
        return start
    if frac >= 1.0:
        return end
    value = end + (1.0 - frac) * (start - end)
    return min(max(value, min(start, end)), max(start, end))


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
        return final_fraction + (1.0 - frac) * (1.0 - final_fraction)  # monotone, exact end
    if kind == "cosine":
        return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + math.cos(math.pi * frac))
    raise ValueError(f"unknown lr schedule {kind!r}; choose one of {', '.join(LR_SCHEDULES)}")


# -- update counts: how many gradient updates the schedule owes after n env steps ----------
def periodic_updates_due(
    steps: int, learning_starts: int, train_frequency: int, gradient_steps: int
) -> int:
    """DQN/IQN: `gradient_steps` updates at every env step s <= `steps` (counting from 1)
    with s >= learning_starts and s % train_frequency == 0."""
    tf = train_frequency
    first = -(-learning_starts // tf) * tf  # first multiple of tf >= learning_starts
    if steps < first:
        return 0
    return ((steps - first) // tf + 1) * gradient_steps


def ratio_updates_due(transitions: int, learning_starts: int, utd_ratio: float) -> int:
    """SAC: none before `learning_starts` transitions exist, then `utd_ratio` per env step
    (the first at exactly `learning_starts`), rounded down."""
    return math.floor(utd_ratio * max(0, transitions - learning_starts + 1))


def next_multiple(step: int, interval: int) -> int:
    """The first multiple of `interval` after `step`: where a run sliced into evaluation or
    logging intervals stops next."""
    return (step // interval + 1) * interval
