"""Per-seed scores, IQM and stratified-bootstrap intervals (scipy.stats + rliable's definitions).

Following Agarwal et al. 2021 ("Deep RL at the edge of the statistical precipice", the
rliable paper): aggregate seeds with the interquartile mean (robust to one diverged seed,
less noisy than the median) and report percentile-bootstrap 95% intervals that resample
seeds. Within one (algo, env) task the stratified bootstrap is the plain bootstrap over
seeds, and for two sets (candidate, reference) each set is resampled independently — what
rliable's ``StratifiedIndependentBootstrap`` does.

Why scipy.stats.bootstrap and not ``rliable.library.get_interval_estimates``: rliable's
``library`` module imports ``arch``, and the pinned ``arch==7.2.0`` fails to import with the
pinned ``pandas==3.1.1`` (``deprecate_kwarg() missing ... 'new_arg_name'``). rliable's
``metrics`` module (pure numpy/scipy) imports fine; `iqm` and `probability_of_improvement`
below compute exactly ``rliable.metrics.aggregate_iqm`` and
``rliable.metrics.probability_of_improvement`` (checked in tests/curves/test_curves_stats.py,
which is why rliable sits in the test dependency group and not in rlbench's own), written with scipy's ``axis=`` so the bootstrap runs vectorised (thousands of resamples in
milliseconds, which the A/A calibration needs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.integrate
import scipy.stats

from rlbench.curves.records import CurveSet

BOOTSTRAP_REPS = 2000
"""Resamples per interval: percentile-interval endpoints move by < 0.01 between seeds of
the bootstrap RNG at this size for 5–15 seeds, far below the effects the rule acts on."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap confidence interval."""

    point: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float]:
        return {"point": self.point, "low": self.low, "high": self.high}

    def fmt(self, digits: int = 3) -> str:
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def iqm(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the middle 50% (= rliable.metrics.aggregate_iqm)."""
    return scipy.stats.trim_mean(x, proportiontocut=0.25, axis=axis)


def probability_of_improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) + P(X = Y)/2 for one random seed of each: the Mann-Whitney U statistic over
    n_x * n_y (= rliable.metrics.probability_of_improvement for one task)."""
    u = scipy.stats.mannwhitneyu(x, y, axis=axis, method="asymptotic").statistic
    return u / (np.shape(x)[axis] * np.shape(y)[axis])


def final_scores(curves: CurveSet) -> np.ndarray:
    """Per-seed return at the last eval point, normalised to [0, 1] by the score range."""
    return curves.normalised()[:, -1]


def auc_scores(curves: CurveSet) -> np.ndarray:
    """Per-seed normalised area under the eval curve: the trapezoid area divided by the
    step span, i.e. the time-averaged normalised return (1.0 = best score from the first
    eval on). Rewards learning fast as well as ending high."""
    norm = curves.normalised()
    if curves.steps.size == 1:
        return norm[:, 0]
    span = curves.steps[-1] - curves.steps[0]
    return scipy.integrate.trapezoid(norm, curves.steps, axis=1) / span


SCORES = {"final": final_scores, "auc": auc_scores}
"""Per-seed score functions by name; the comparison rule runs on each."""


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def iqm_interval(
    x: np.ndarray, confidence: float = 0.95, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> Interval:
    """IQM of per-seed scores with a percentile bootstrap interval over seeds."""
    x = np.asarray(x, dtype=np.float64)
    point = float(iqm(x))
    if x.size < 2:
        return Interval(point, point, point)
    res = scipy.stats.bootstrap(
        (x,), iqm, n_resamples=reps, confidence_level=confidence, method="percentile",
        vectorized=True, rng=_rng(seed),
    )
    return Interval(point, float(res.confidence_interval.low), float(res.confidence_interval.high))


def curve_band(
    curves: CurveSet, confidence: float = 0.95, reps: int = BOOTSTRAP_REPS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IQM across seeds at every eval step with its bootstrap band (raw returns)."""
    r = curves.returns
    point = iqm(r, axis=0)
    if curves.n < 2:
        return point, point.copy(), point.copy()
    res = scipy.stats.bootstrap(
        (r,), iqm, axis=0, n_resamples=reps, confidence_level=confidence,
        method="percentile", vectorized=True, rng=_rng(seed),
    )
    return point, res.confidence_interval.low, res.confidence_interval.high


def two_sample_interval(
    statistic, x: np.ndarray, y: np.ndarray, confidence: float = 0.95,
    reps: int = BOOTSTRAP_REPS, seed: int = 0,
) -> Interval:
    """`statistic(x, y)` with a percentile interval from resampling x and y independently."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    res = scipy.stats.bootstrap(
        (x, y), statistic, n_resamples=reps, confidence_level=confidence,
        method="percentile", vectorized=True, paired=False, rng=_rng(seed),
    )
    return Interval(float(statistic(x, y)), float(res.confidence_interval.low),
                    float(res.confidence_interval.high))


def poi_interval(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95, reps: int = BOOTSTRAP_REPS,
    seed: int = 0,
) -> Interval:
    """P(candidate seed beats reference seed) with an independent two-sample bootstrap."""
    return two_sample_interval(probability_of_improvement, x, y, confidence, reps, seed)


def mean_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """mean(x) - mean(y), vectorised for `two_sample_interval`."""
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def _iqm_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return iqm(x, axis=axis) - iqm(y, axis=axis)


def iqm_difference_interval(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95, reps: int = BOOTSTRAP_REPS,
    seed: int = 0,
) -> Interval:
    """IQM(candidate) - IQM(reference) with an independent two-sample bootstrap interval."""
    return two_sample_interval(_iqm_difference, x, y, confidence, reps, seed)
