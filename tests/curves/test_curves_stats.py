"""Scores and bootstrap intervals: the definitions match rliable's, intervals behave."""

from __future__ import annotations

import numpy as np
import pytest
from rliable import metrics

from rlbench.curves import stats
from rlbench.curves.records import CurveSet


def _set(returns: np.ndarray, steps: np.ndarray | None = None) -> CurveSet:
    returns = np.asarray(returns, dtype=float)
    steps = np.arange(1, returns.shape[1] + 1) * 1000 if steps is None else steps
    return CurveSet("x", "dqn", "CartPole-v1", tuple(range(len(returns))), steps, returns,
                    (0.0, 500.0))


@pytest.mark.parametrize("n", [2, 5, 7, 10, 16])
def test_stats_iqm_equals_rliable(n: int) -> None:
    x = np.random.default_rng(n).normal(size=n)
    assert stats.iqm(x) == pytest.approx(metrics.aggregate_iqm(x))


@pytest.mark.parametrize("n, m", [(2, 2), (5, 10), (7, 3)])
def test_stats_probability_of_improvement_equals_rliable(n: int, m: int) -> None:
    rng = np.random.default_rng(n * m)
    x, y = rng.integers(0, 4, size=n).astype(float), rng.integers(0, 4, size=m).astype(float)
    ours = stats.probability_of_improvement(x, y)
    assert ours == pytest.approx(metrics.probability_of_improvement(x[:, None], y[:, None]))


def test_stats_probability_of_improvement_extremes() -> None:
    assert stats.probability_of_improvement(np.array([2.0, 3]), np.array([0.0, 1])) == 1.0
    assert stats.probability_of_improvement(np.array([0.0, 1]), np.array([2.0, 3])) == 0.0
    assert stats.probability_of_improvement(np.ones(3), np.ones(4)) == 0.5


def test_stats_scores_normalise_final_and_auc() -> None:
    curves = _set([[0, 250, 500], [500, 500, 500]])
    np.testing.assert_allclose(stats.final_scores(curves), [1.0, 1.0])
    # AUC = time-average of the normalised curve: trapezoid of (0, .5, 1) over 2 units / 2.
    np.testing.assert_allclose(stats.auc_scores(curves), [0.5, 1.0])


def test_stats_auc_uses_step_spacing() -> None:
    uneven = _set([[0, 500, 500]], steps=np.array([0, 100, 1000]))
    assert stats.auc_scores(uneven)[0] == pytest.approx((0.5 * 100 + 900) / 1000)


def test_stats_iqm_interval_contains_point_and_is_reproducible() -> None:
    x = np.random.default_rng(0).normal(size=8)
    a, b = stats.iqm_interval(x, seed=3), stats.iqm_interval(x, seed=3)
    assert a == b
    assert a.low <= a.point <= a.high
    assert a.high - a.low > 0


def test_stats_interval_of_constant_data_is_a_point() -> None:
    iv = stats.iqm_interval(np.full(5, 0.7))
    assert iv.low == iv.point == iv.high == pytest.approx(0.7)


def test_stats_poi_interval_widens_with_fewer_seeds() -> None:
    rng = np.random.default_rng(1)
    big = stats.poi_interval(rng.normal(size=40), rng.normal(size=40))
    small = stats.poi_interval(rng.normal(size=4), rng.normal(size=4))
    assert (small.high - small.low) > (big.high - big.low)


def test_stats_curve_band_shape_and_order() -> None:
    curves = _set(np.random.default_rng(2).uniform(0, 500, size=(6, 5)))
    mid, low, high = stats.curve_band(curves)
    assert mid.shape == low.shape == high.shape == (5,)
    assert np.all(low <= mid + 1e-9) and np.all(mid <= high + 1e-9)
