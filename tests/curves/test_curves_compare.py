"""The comparison rule on curve sets built here as test fixtures (synthetic, never reference
curves): A/A passes, an injected fault regresses, a clearly better set improves, and the
rule's A/A false-alarm rate / power behave as designed.

Fixture curves rise linearly to a per-seed plateau drawn from N(plateau, 0.15) (clipped to
the score range) plus per-eval noise: the shape and seed-to-seed spread of short CartPole
runs. Every verdict here is deterministic (fixed fixture seeds, fixed bootstrap seed).
"""

from __future__ import annotations

import numpy as np
import pytest

from rlbench.curves.compare import (
    IMPROVED,
    PASS,
    REGRESSED,
    Rule,
    compare,
    verdict_rates,
)
from rlbench.curves.records import BaselineError, CurveSet

STEPS = np.arange(1, 11) * 2_000


def curve_set(
    plateau: float, n: int, seed: int, spread: float = 0.15, first_seed: int = 0,
    name: str = "dqn/CartPole-v1",
) -> CurveSet:
    """Test fixture: `n` synthetic CartPole-like curves (see the module docstring)."""
    rng = np.random.default_rng(seed)
    finals = np.clip(rng.normal(plateau, spread, size=n), 0.02, 1.0)
    shape = np.minimum(STEPS / STEPS[-2], 1.0)
    returns = np.outer(finals, shape) * 500 + rng.normal(0, 10, size=(n, STEPS.size))
    return CurveSet(name, "dqn", "CartPole-v1", tuple(range(first_seed, first_seed + n)),
                    STEPS, np.clip(returns, 0, 500), (0.0, 500.0),
                    {"env_id": "CartPole-v1", "total_steps": 20_000})


def test_compare_aa_passes() -> None:
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    candidate = curve_set(0.6, 5, seed=2)
    result = compare(candidate, reference)
    assert result.verdict == PASS
    assert set(result.scores) == {"final", "auc"}  # both shown, the rule's decide
    for score in result.scores.values():
        assert score.poi.low <= 0.5 <= score.poi.high or abs(score.difference.point) <= 0.1


def test_compare_injected_fault_regresses() -> None:
    # The fault fixture: same spread, plateau 0.25 instead of 0.6 (a learner that stalls,
    # what target-not-updated does to DQN) — an effect of 0.35 of the score range.
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    faulty = curve_set(0.25, 5, seed=3)
    result = compare(faulty, reference)
    assert result.verdict == REGRESSED
    assert result.scores["auc"].poi.high < 0.5
    assert result.scores["auc"].difference.point < -0.1
    assert result.scores["final"].verdict == "info"  # shown, does not decide


def test_compare_clearly_better_improves() -> None:
    reference = curve_set(0.4, 10, seed=1, first_seed=100)
    better = curve_set(0.9, 5, seed=4, spread=0.05)
    assert compare(better, reference).verdict == IMPROVED


def test_compare_small_shift_below_min_effect_passes() -> None:
    # A consistent but tiny shift (0.03 of the range, no seed spread) is "significant" by
    # the interval alone; the practical-effect gate keeps it from raising an alarm.
    reference = curve_set(0.6, 10, seed=1, spread=0.0, first_seed=100)
    shifted = curve_set(0.57, 5, seed=1, spread=0.0)
    result = compare(shifted, reference, Rule(scores=("final", "auc")))
    assert result.scores["final"].poi.high < 0.5
    assert result.verdict == PASS


def test_compare_one_diverged_seed_does_not_regress() -> None:
    # Rank-based P and the IQM ignore one seed collapsing to 0 out of 5.
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    candidate = curve_set(0.6, 5, seed=2)
    returns = candidate.returns.copy()
    returns[0] = 0.0
    collapsed = CurveSet(candidate.name, "dqn", "CartPole-v1", candidate.seeds, candidate.steps,
                         returns, candidate.score_range)
    assert compare(collapsed, reference).verdict == PASS


def test_compare_is_deterministic() -> None:
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    candidate = curve_set(0.5, 5, seed=5)
    a, b = compare(candidate, reference), compare(candidate, reference)
    assert a.to_dict() == b.to_dict()


def test_compare_different_budget_is_an_error() -> None:
    reference = curve_set(0.6, 10, seed=1)
    candidate = curve_set(0.6, 5, seed=2)
    longer = CurveSet(candidate.name, "dqn", "CartPole-v1", candidate.seeds, candidate.steps * 2,
                      candidate.returns, candidate.score_range)
    with pytest.raises(BaselineError, match="different training budgets"):
        compare(longer, reference)


def test_compare_other_env_is_an_error() -> None:
    reference = curve_set(0.6, 10, seed=1)
    candidate = curve_set(0.6, 5, seed=2)
    other = CurveSet(candidate.name, "dqn", "Acrobot-v1", candidate.seeds, candidate.steps,
                     candidate.returns, candidate.score_range)
    with pytest.raises(BaselineError, match="Acrobot-v1"):
        compare(other, reference)


def test_compare_needs_two_seeds_each_side() -> None:
    with pytest.raises(ValueError, match=">= 2 seeds"):
        compare(curve_set(0.6, 1, seed=2), curve_set(0.6, 10, seed=1))


@pytest.mark.parametrize(
    "kwargs, match",
    [({"scores": ("median",)}, "unknown score"), ({"confidence": 1.2}, "confidence"),
     ({"min_effect": -0.1}, "min_effect")],
)
def test_rule_rejects_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Rule(**kwargs)


def test_rule_bonferroni_splits_confidence_over_scores() -> None:
    assert Rule(scores=("final", "auc")).score_confidence == pytest.approx(0.975)
    assert Rule().score_confidence == pytest.approx(0.95)


def test_verdict_rates_aa_false_alarms_are_rare() -> None:
    # A/A on one pool of 15 same-distribution runs: 5-vs-10 disjoint splits. The rule's
    # design target is a false-alarm rate well under 5% per entry; 120 splits at a true
    # rate of ~2% give <= 6 alarms with overwhelming probability, and the fixture is fixed.
    pool = curve_set(0.6, 15, seed=11)
    rates = verdict_rates(pool, None, 5, 10, Rule(), trials=120)
    assert rates.trials == 120
    assert rates.counts[REGRESSED] + rates.counts[IMPROVED] <= 6


def test_verdict_rates_power_on_fault_is_high() -> None:
    pool = curve_set(0.6, 15, seed=11)
    faulty = curve_set(0.25, 8, seed=12, first_seed=50)
    rates = verdict_rates(faulty, pool, 5, 10, Rule(), trials=60)
    assert rates.rate(REGRESSED) >= 0.9
    low, high = rates.interval(REGRESSED)
    assert low <= rates.rate(REGRESSED) <= high


def test_verdict_rates_aa_split_needs_enough_seeds() -> None:
    with pytest.raises(ValueError, match="pool of at least 15"):
        verdict_rates(curve_set(0.6, 10, seed=1), None, 5, 10)
