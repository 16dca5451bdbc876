"""rlbench's own trainers pass the `rlbench check` battery, and catalogued faults fail the
check that isolates the piece they break.

Seeds are fixed (0) and a seeded run is deterministic on one machine, so these tests cannot
flake there; across CPUs only the distributions agree, which the battery's margins allow
for: measured values land within 0.05 of the known ones (tolerances 0.1 / 0.2), continuous
greedy actions at 0.78-0.92 (threshold 0.5), every broken piece the checks name >= 0.25
away (docs/check.md). The full batteries take minutes (dqn ≈ 35 CPU-seconds, iqn ≈ 70,
sac ≈ 130), so they are `slow`; the default run keeps a few seconds of dqn checks.
"""

from __future__ import annotations

import pytest

from rlbench.check import run_battery
from rlbench.trainers import TRAINERS, backend_available

pytestmark = pytest.mark.learning


def _explain(report) -> str:
    return "\n".join(f"{c.name} ({c.kind}): {c.verdict}: {c.reason}" for c in report.checks)


@pytest.mark.skipif(not backend_available("torch"), reason="needs the torch extra")
def test_dqn_time_limit_and_nan_checks_pass_and_ignored_truncation_fails() -> None:
    clean = run_battery("dqn", only=["timelimit-choice", "eval-protocol", "nan-reward"])
    assert clean.ok and clean.counts()["pass"] == 3, _explain(clean)
    faulty = run_battery("dqn", faults=["eval-truncation-ignored"], only=["eval-protocol"])
    (check,) = faulty.checks
    assert check.verdict == "fail", _explain(faulty)
    assert "does not end episodes at truncation" in check.reason, check.reason


@pytest.mark.skipif(not backend_available("torch"), reason="needs the torch extra")
def test_dqn_target_never_updated_fails_the_discount_check() -> None:
    # V(0) = gamma · V_target(1), and a target network left at its initialisation says ~0.
    report = run_battery("dqn", faults=["target-not-updated"], only=["probe-3", "discount"])
    verdicts = {c.name: c for c in report.checks}
    assert verdicts["probe-3"].verdict == "pass", _explain(report)  # V(1) is terminal: fine
    assert verdicts["discount"].verdict == "fail", _explain(report)
    assert "not bootstrapped" in verdicts["discount"].reason, verdicts["discount"].reason


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(TRAINERS))
def test_builtin_trainer_passes_every_check(algo: str) -> None:
    if not backend_available(TRAINERS[algo].backend):
        pytest.skip(f"needs the {TRAINERS[algo].backend} extra")
    report = run_battery(algo, seed=0)
    assert report.ok, _explain(report)
    assert report.counts()["skip"] == 0, _explain(report)  # gamma and values() both exist
