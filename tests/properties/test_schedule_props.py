"""Schedules: monotone, bounded, hitting their end points exactly."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from rlbench.schedules import LR_SCHEDULES, decay_steps, epsilon_at, lr_factor

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
