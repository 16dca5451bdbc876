"""The comparison rule (candidate curves vs reference curves → pass / regressed / improved)
and its calibration: false-alarm rate on same-code reruns (A/A) and power on a known fault.

The rule, per (algo, env) and per deciding score (`Rule.scores`; default the normalised
"auc"; the "final" return is reported alongside):

* ``P`` = probability that a random candidate seed scores higher than a random reference
  seed (rliable's probability of improvement), with a percentile bootstrap interval that
  resamples each set's seeds independently;
* ``delta`` = IQM(candidate) − IQM(reference) in normalised units (fraction of the env's
  score range).

A score **regressed** when the whole interval of ``P`` lies below 0.5 *and* ``delta`` is below
``-min_effect``; **improved** symmetrically; otherwise it **passes**. With several deciding
scores an entry regressed if any regressed, improved if any improved and none regressed.

Why both conditions: ``P``'s interval answers "is the shift more than seed noise?" and,
being rank-based, one diverged seed cannot fake or hide a shift. With 5–10 seeds the
percentile bootstrap is known to be somewhat too narrow, and with enough seeds a tiny but
real shift would become "significant"; the practical-effect gate (default 0.1 of the score
range: 50 return on CartPole, 100 on swingup) keeps alarms to changes someone should act on.
With several deciding scores the interval level is Bonferroni-split over them (2 scores →
97.5% each) so the family-wise level per entry stays at 5% before the effect gate. The
resulting false-alarm rate is not assumed: `verdict_rates` measures it by A/A resampling
of real runs, and the nightly report prints it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.stats

from rlbench.curves import stats
from rlbench.curves.records import BaselineError, CurveSet

PASS, REGRESSED, IMPROVED = "pass", "regressed", "improved"
INFO = "info"  # a score shown for information that does not decide the verdict


@dataclass(frozen=True)
class Rule:
    """Parameters of the comparison rule (see the module docstring for the reasoning)."""

    scores: tuple[str, ...] = ("auc",)
    """Per-seed scores that decide the verdict (keys of `rlbench.curves.stats.SCORES`); the
    others are reported for information. AUC only: the first calibration on real quick runs
    (final + AUC) found every A/A false alarm (14/252 DQN, 17/252 actor/learner splits) in
    the single-eval final score, none in the AUC, which averages all eval points."""
    confidence: float = 0.95
    """Family-wise interval level per entry, split evenly (Bonferroni) over `scores`."""
    min_effect: float = 0.1
    """Smallest |IQM change| (fraction of the env's score range) that can trigger a verdict."""
    reps: int = stats.BOOTSTRAP_REPS
    """Bootstrap resamples per interval."""
    budget_tolerance: float = 0.05
    """Largest relative difference between the candidate's and the reference's last eval
    step; beyond it the two were trained on different budgets and comparing is an error."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.scores) - stats.SCORES.keys())
        if not self.scores or unknown:
            raise ValueError(f"unknown score(s) {unknown}; known: {', '.join(stats.SCORES)}")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if self.min_effect < 0:
            raise ValueError(f"min_effect must be >= 0, got {self.min_effect}")

    @property
    def score_confidence(self) -> float:
        """Interval level used for each score (Bonferroni)."""
        return 1.0 - (1.0 - self.confidence) / len(self.scores)

    def describe(self) -> str:
        return (
            f"a score regresses when the {self.score_confidence:.1%} bootstrap interval of "
            f"P(candidate seed > reference seed) lies below 0.5 and the IQM drops by more "
            f"than {self.min_effect:g} of the score range (improved: symmetric); "
            f"scores: {', '.join(self.scores)}; entry verdict: regressed if any score "
            f"regressed, improved if any improved and none regressed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"scores": list(self.scores), "confidence": self.confidence,
                "score_confidence": self.score_confidence, "min_effect": self.min_effect,
                "reps": self.reps}


@dataclass(frozen=True)
class ScoreComparison:
    """One score of one entry: both IQMs, their difference, P(improvement), the verdict."""

    score: str
    candidate: stats.Interval
    reference: stats.Interval
    difference: stats.Interval
    poi: stats.Interval
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "verdict": self.verdict,
                "candidate_iqm": self.candidate.to_dict(),
                "reference_iqm": self.reference.to_dict(),
                "iqm_difference": self.difference.to_dict(),
                "probability_of_improvement": self.poi.to_dict()}


@dataclass(frozen=True)
class Comparison:
    name: str
    verdict: str
    scores: dict[str, ScoreComparison]
    n_candidate: int
    n_reference: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verdict": self.verdict, "n_candidate": self.n_candidate,
                "n_reference": self.n_reference,
                "scores": {k: v.to_dict() for k, v in self.scores.items()}}


def check_comparable(candidate: CurveSet, reference: CurveSet, rule: Rule) -> None:
    """Raise `BaselineError` when the two sets cannot be compared meaningfully."""
    if (candidate.algo, candidate.env) != (reference.algo, reference.env):
        raise BaselineError(
            f"{candidate.name}: candidate is {candidate.algo} on {candidate.env} but the "
            f"reference is {reference.algo} on {reference.env}"
        )
    last_c, last_r = candidate.steps[-1], reference.steps[-1]
    if abs(last_c - last_r) > rule.budget_tolerance * max(last_r, 1.0):
        raise BaselineError(
            f"{candidate.name}: candidate curves end at step {last_c:.0f} but the reference "
            f"ends at {last_r:.0f}: different training budgets cannot be compared "
            "(regenerate the reference for this profile)"
        )
    if tuple(candidate.score_range) != tuple(reference.score_range):
        raise BaselineError(
            f"{candidate.name}: score range {candidate.score_range} differs from the "
            f"reference's {reference.score_range}"
        )


def score_verdict(diff: float, poi: stats.Interval, min_effect: float) -> str:
    if poi.high < 0.5 and diff < -min_effect:
        return REGRESSED
    if poi.low > 0.5 and diff > min_effect:
        return IMPROVED
    return PASS


def combine(verdicts: list[str]) -> str:
    """Entry verdict from its score verdicts: any regression wins, then any improvement."""
    if REGRESSED in verdicts:
        return REGRESSED
    return IMPROVED if IMPROVED in verdicts else PASS


def compare(candidate: CurveSet, reference: CurveSet, rule: Rule = Rule(), seed: int = 0) -> Comparison:
    """Apply the rule to one entry. `seed` seeds the bootstrap: same inputs, same verdict."""
    check_comparable(candidate, reference, rule)
    if candidate.n < 2 or reference.n < 2:
        raise ValueError(
            f"{candidate.name}: the rule needs >= 2 seeds on each side, got "
            f"{candidate.n} candidate and {reference.n} reference"
        )
    level = rule.score_confidence
    results = {}
    for name, score in stats.SCORES.items():  # every score is shown; rule.scores decide
        x, y = score(candidate), score(reference)
        poi = stats.poi_interval(x, y, level, rule.reps, seed)
        diff = stats.iqm_difference_interval(x, y, level, rule.reps, seed)
        results[name] = ScoreComparison(
            name,
            stats.iqm_interval(x, level, rule.reps, seed),
            stats.iqm_interval(y, level, rule.reps, seed),
            diff,
            poi,
            score_verdict(diff.point, poi, rule.min_effect) if name in rule.scores else INFO,
        )
    verdict = combine([results[name].verdict for name in rule.scores])
    return Comparison(candidate.name, verdict, results, candidate.n, reference.n)


def quick_verdict(candidate: CurveSet, reference: CurveSet, rule: Rule, seed: int = 0) -> str:
    """`compare(...).verdict` without the descriptive intervals (what calibration needs)."""
    verdicts = []
    for name in rule.scores:
        x, y = stats.SCORES[name](candidate), stats.SCORES[name](reference)
        poi = stats.poi_interval(x, y, rule.score_confidence, rule.reps, seed)
        diff = float(stats.iqm(x) - stats.iqm(y))
        verdicts.append(score_verdict(diff, poi, rule.min_effect))
    return combine(verdicts)


@dataclass(frozen=True)
class Rates:
    """How often the rule said what, over resampled comparisons."""

    trials: int
    counts: dict[str, int]
    n_candidate: int
    n_reference: int
    pool: dict[str, int] = field(default_factory=dict)  # seeds available on each side

    def rate(self, verdict: str) -> float:
        return self.counts.get(verdict, 0) / self.trials

    def interval(self, *verdicts: str, confidence: float = 0.95) -> tuple[float, float]:
        """Clopper-Pearson interval of the rate of `verdicts`. The trials reuse seeds from
        one pool, so they are not independent: read it as a lower bound on the uncertainty."""
        k = sum(self.counts.get(v, 0) for v in verdicts)
        ci = scipy.stats.binomtest(k, self.trials).proportion_ci(confidence, method="exact")
        return float(ci.low), float(ci.high)

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "counts": self.counts, "n_candidate": self.n_candidate,
                "n_reference": self.n_reference, "pool": self.pool,
                "rates": {v: self.rate(v) for v in (PASS, REGRESSED, IMPROVED)}}


def _subsets(n: int, k: int, trials: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """All k-subsets of range(n) when there are at most `trials`, else `trials` random ones."""
    if math.comb(n, k) <= trials:
        return list(itertools.combinations(range(n), k))
    return [tuple(sorted(rng.choice(n, size=k, replace=False))) for _ in range(trials)]


def verdict_rates(
    candidate_pool: CurveSet,
    reference_pool: CurveSet | None,
    n_candidate: int,
    n_reference: int,
    rule: Rule = Rule(),
    trials: int = 300,
    seed: int = 0,
) -> Rates:
    """Rule verdicts over resampled seed sets.

    A/A (`reference_pool` None): split one pool of same-code runs into disjoint candidate
    and reference sets; every non-"pass" is a false alarm. Power (`reference_pool` given,
    e.g. clean runs vs runs with a fault on): draw a candidate subset from one pool and a
    reference subset from the other; the "regressed" rate is the rule's power.
    """
    if min(n_candidate, n_reference) < 2:
        raise ValueError(f"the rule needs >= 2 seeds on each side, got {n_candidate} vs {n_reference}")
    rng = np.random.default_rng(seed)
    counts = {PASS: 0, REGRESSED: 0, IMPROVED: 0}
    if reference_pool is None:
        pool = candidate_pool
        if n_candidate + n_reference > pool.n:
            raise ValueError(
                f"A/A split of {n_candidate}+{n_reference} seeds needs a pool of at least "
                f"{n_candidate + n_reference} runs, {pool.name} has {pool.n}"
            )
        draws = []
        for cand in _subsets(pool.n, n_candidate, trials, rng):
            rest = np.setdiff1d(np.arange(pool.n), cand)
            ref = rest if rest.size == n_reference else rng.choice(rest, n_reference, replace=False)
            draws.append((pool.subset(cand), pool.subset(np.sort(ref))))
        sizes = {"candidate": pool.n, "reference": pool.n}
    else:
        if n_candidate > candidate_pool.n or n_reference > reference_pool.n:
            raise ValueError("subset sizes exceed the pools")
        cands = _subsets(candidate_pool.n, n_candidate, trials, rng)
        refs = _subsets(reference_pool.n, n_reference, trials, rng)
        pairs = list(itertools.product(range(len(cands)), range(len(refs))))
        if len(pairs) > trials:
            pairs = [pairs[i] for i in rng.choice(len(pairs), trials, replace=False)]
        draws = [(candidate_pool.subset(cands[i]), reference_pool.subset(refs[j])) for i, j in pairs]
        sizes = {"candidate": candidate_pool.n, "reference": reference_pool.n}
    for i, (cand, ref) in enumerate(draws):
        counts[quick_verdict(cand, ref, rule, seed=seed + i)] += 1
    return Rates(len(draws), counts, n_candidate, n_reference, sizes)
