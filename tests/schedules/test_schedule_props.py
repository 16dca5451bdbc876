"""Schedules: monotone, bounded, hitting their end points exactly."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlbench.schedules import (
    LR_SCHEDULES,
    decay_steps,
    epsilon_at,
    linear,
    lr_factor,
    periodic_updates_due,
    ratio_updates_due,
)

pytestmark = pytest.mark.law

prob = st.floats(0.0, 1.0)


@given(total=st.integers(1, 10**6), start=prob, end=prob, fraction=st.floats(0.0, 1.0),
       steps=st.lists(st.integers(0, 2 * 10**6), min_size=2, max_size=20))
def test_epsilon_monotone_bounded_and_reaches_min(total, start, end, fraction, steps) -> None:
    values = [epsilon_at(s, total, start, end, fraction) for s in sorted(steps)]
    lo, hi = min(start, end), max(start, end)
    assert all(lo - 1e-12 <= v <= hi + 1e-12 for v in values)
    sign = 1 if end <= start else -1  # decays (or grows, if misconfigured) monotonically
    assert all(sign * (a - b) >= -1e-12 for a, b in zip(values, values[1:]))
    assert epsilon_at(decay_steps(total, fraction), total, start, end, fraction) == end
    assert epsilon_at(0, total, start, end, fraction) == (start if decay_steps(total, fraction) else end)


@given(kind=st.sampled_from(LR_SCHEDULES), total=st.integers(1, 10**5),
       final=st.floats(0.0, 1.0), update=st.integers(0, 2 * 10**5))
def test_lr_factor_bounded_and_ends_at_final_fraction(kind, total, final, update) -> None:
    f = lr_factor(kind, update, total, final)
    assert min(final, 1.0) - 1e-12 <= f <= 1.0 + 1e-12
    if kind != "constant":
        assert math.isclose(lr_factor(kind, 0, total, final), 1.0)
        assert math.isclose(lr_factor(kind, total, total, final), final, abs_tol=1e-12)
        assert lr_factor(kind, update + 1, total, final) <= f + 1e-12


@given(steps=st.integers(0, 2_000), starts=st.integers(1, 500), tf=st.integers(1, 64),
       gs=st.integers(1, 8))
def test_periodic_updates_due_counts_the_loops_update_steps(steps, starts, tf, gs) -> None:
    # The single-process loop's rule, step by step (steps count from 1).
    loop = sum(gs for s in range(1, steps + 1) if s >= starts and s % tf == 0)
    assert periodic_updates_due(steps, starts, tf, gs) == loop


@given(steps=st.integers(0, 5_000), starts=st.integers(1, 500), ratio=st.floats(0.01, 8.0))
def test_ratio_updates_due_waits_for_warmup_then_keeps_the_ratio(steps, starts, ratio) -> None:
    due, after = ratio_updates_due(steps, starts, ratio), ratio_updates_due(steps + 1, starts, ratio)
    assert ratio_updates_due(starts - 1, starts, ratio) == 0
    assert 0 <= after - due <= math.ceil(ratio)  # monotone, at most ceil(ratio) per step
    assert ratio * max(0, steps - starts + 1) - 1 < due <= ratio * max(0, steps - starts + 1)


@given(steps=st.integers(0, 5_000), starts=st.integers(1, 500), gs=st.integers(1, 8))
def test_update_rules_agree_at_one_round_every_step(steps, starts, gs) -> None:
    """SAC's ratio rule with utd_ratio = gs and DQN's periodic rule with train_frequency = 1
    and gradient_steps = gs are the same schedule."""
    assert ratio_updates_due(steps, starts, float(gs)) == periodic_updates_due(steps, starts, 1, gs)


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(start=finite, end=finite, duration=st.integers(1, 10**6))
def test_linear_starts_at_start_exactly(start: float, end: float, duration: int) -> None:
    # end + (start - end) is not always `start` in floats (start=1e-20, end=0.3 gives 0.0),
    # so step 0 must return `start` itself.
    assert linear(start, end, duration, 0) == start, "linear(step=0) is not start"
