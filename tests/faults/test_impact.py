"""`rlbench faults impact`: its statistics, crash accounting, plot and input checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlbench.faults import CATALOGUE, ENV_VAR
from rlbench.faults.impact import (
    ImpactRow,
    ImpactRun,
    Variant,
    applicable_faults,
    bootstrap_diff_ci,
    format_impact,
    impact,
    impact_variants,
    plot_impact,
    summarise_impact,
    verdict,
)

CLEAN = [480.0, 500.0, 470.0, 495.0, 500.0]


def test_bootstrap_diff_ci_is_seeded_and_brackets_the_difference() -> None:
    hurt = [20.0, 35.0, 9.0, 50.0, 22.0]
    first = bootstrap_diff_ci(hurt, CLEAN)
    assert first == bootstrap_diff_ci(hurt, CLEAN)  # same inputs → identical interval
    diff, low, high = first
    assert diff == pytest.approx(sum(hurt) / 5 - sum(CLEAN) / 5)
    assert low <= diff <= high < 0 and verdict(low, high) == "hurts"
    assert verdict(low, high, n=3) == "too few seeds"  # bootstrap CIs undercover at n < 5


def test_bootstrap_diff_ci_identical_groups_straddle_zero() -> None:
    diff, low, high = bootstrap_diff_ci(CLEAN, CLEAN)
    assert diff == 0 and low < 0 < high and verdict(low, high) == "no clear effect"
    assert bootstrap_diff_ci([500.0] * 3, [500.0] * 3) == (0.0, 0.0, 0.0)  # capped returns


def test_bootstrap_diff_ci_needs_two_values_per_group() -> None:
    with pytest.raises(ValueError, match=">= 2 returns per group"):
        bootstrap_diff_ci([1.0], CLEAN)


def _runs(variant: str, values: list[float | None]) -> list[ImpactRun]:
    return [ImpactRun(variant, s, "ok" if v is not None else "crashed", v,
                      error="" if v is not None else "exit 1: RuntimeError: learner died")
            for s, v in enumerate(values)]


def test_summarise_impact_reports_crashes_as_crashed_not_a_number() -> None:
    runs = (_runs("clean", CLEAN) + _runs("no-lr-schedule", [None, 12.0, None, 3.0, 9.0])
            + _runs("target-not-updated", [9.0, 12.0, 30.0, 3.0, 9.0]))
    variants = [Variant("clean", None), Variant("no-lr-schedule", "no-lr-schedule", (), "clean"),
                Variant("target-not-updated", "target-not-updated", (), "clean")]
    clean, crashed, hurt = summarise_impact(runs, variants)
    assert clean.id == "clean" and clean.mean == pytest.approx(489.0) and clean.diff is None
    assert crashed.status == "crashed" and crashed.mean is None and crashed.diff is None
    assert "2/5 seeds" in crashed.note and "learner died" in crashed.note
    assert hurt.verdict == "hurts" and hurt.ci_high < 0 and hurt.baseline == "clean"
    lines = format_impact([clean, crashed, hurt], "header").splitlines()
    assert "crashed" in lines[4] and "hurts" in lines[5]  # header, names, rule, then rows


def test_summarise_impact_compares_each_fault_with_its_own_baseline() -> None:
    runs = (_runs("clean", CLEAN) + _runs("clean+actors=2", [100.0, 110.0, 90.0])
            + _runs("stale-actor-weights", [100.0, 110.0, 90.0])
            + _runs("no-lr-schedule", [480.0, 500.0, 470.0, 495.0, 500.0]))
    variants = [Variant("clean", None), Variant("clean+actors=2", None, ("actors=2",)),
                Variant("stale-actor-weights", "stale-actor-weights", ("actors=2",),
                        "clean+actors=2"),
                Variant("no-lr-schedule", "no-lr-schedule", (), "clean")]
    rows = {r.id: r for r in summarise_impact(runs, variants)}
    assert rows["stale-actor-weights"].diff == 0.0  # not 100 - 489: same setup, fault off
    assert rows["no-lr-schedule"].diff == 0.0
    assert "every seed identical" in rows["stale-actor-weights"].note
    crashed_base = summarise_impact(_runs("clean", [None, 1.0]) + _runs("x", [1.0, 2.0]),
                                    [Variant("clean", None), Variant("x", "x", (), "clean")])
    assert crashed_base[1].diff is None and "baseline clean crashed" in crashed_base[1].note


def test_impact_variants_add_a_baseline_per_setup() -> None:
    names = [(v.name, v.baseline) for v in impact_variants("dqn")]
    assert names[:2] == [("clean", None), ("clean+actors=2", None)]
    assert ("step-counter-missing", "clean+actors=2") in names
    assert ("target-not-updated", "clean") in names
    only = impact_variants("dqn", "stale-actor-weights")  # no unneeded plain-clean baseline
    assert [(v.name, v.setup) for v in only] == [
        ("clean+actors=2", ("actors=2",)), ("stale-actor-weights", ("actors=2",))]


def test_plot_impact_writes_a_png_with_crashed_rows(tmp_path: Path) -> None:
    rows = [ImpactRow("clean", "ok", CLEAN, 489.0),
            ImpactRow("no-grad-clipping", "ok", CLEAN, 489.0, "clean", 0.0, -8.0, 8.0,
                      "no clear effect"),
            ImpactRow("step-counter-missing", "crashed", baseline="clean+actors=2")]
    path = tmp_path / "out" / "impact.png"
    plot_impact(rows, path, "title")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["impact.png"]  # no temp file left


def test_applicable_faults_follow_the_catalogue_algos() -> None:
    sac = [f.id for f in applicable_faults("sac")]
    assert sac == [f.id for f in CATALOGUE if "sac" in f.algos]
    assert "stale-optimizer" not in sac and "stale-eval-actor" in sac
    assert [f.id for f in applicable_faults("dqn", "no-lr-schedule,target-not-updated")] == [
        "target-not-updated", "no-lr-schedule"]  # catalogue order
    with pytest.raises(ValueError, match="stale-optimizer applies to dqn, iqn"):
        applicable_faults("sac", "stale-optimizer")


def test_impact_rejects_bad_input(monkeypatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'nope'"):
        impact("nope", 5, 100, out=tmp_path)
    monkeypatch.setattr("rlbench.trainers.TRAINERS", {"dqn": None})
    with pytest.raises(ValueError, match="seeds must be >= 2"):
        impact("dqn", 1, 100, out=tmp_path)
    monkeypatch.setenv(ENV_VAR, "no-grad-clipping")
    with pytest.raises(ValueError, match=f"unset {ENV_VAR}"):
        impact("dqn", 5, 100, out=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written


@pytest.mark.slow
def test_impact_end_to_end_dqn_writes_results_and_reports_crashes(tmp_path: Path) -> None:
    """Real training runs in the executor's processes (~1 min on a busy 2-core box, hence slow)."""
    tiny = ["learning_starts=100", "eval_episodes=2", "buffer_size=1000"]
    result = impact("dqn", 2, 400, "no-grad-clipping", tmp_path / "ok", jobs=2, sets=tiny,
                    log=lambda s: None)
    rows = {r.id: r for r in result["rows"]}
    assert rows["clean"].status == rows["no-grad-clipping"].status == "ok"
    assert rows["no-grad-clipping"].verdict == "too few seeds" and rows["clean"].returns
    assert (tmp_path / "ok" / "impact.png").is_file()
    assert (tmp_path / "ok" / "runs" / "no-grad-clipping-s1" / "summary.json").is_file()
    # A run that dies (here: its env's reward turns NaN and the replay buffer refuses it)
    # is "crashed", with its error.
    bad = impact("dqn", 2, 400, "no-grad-clipping", tmp_path / "bad", jobs=2, sets=tiny,
                 env_id="tests.nan_env:NaNRewardCartPole-v0", log=lambda s: None)
    assert [r.status for r in bad["rows"]] == ["crashed", "crashed"]
    assert "reward" in bad["rows"][0].note


def test_impact_rejects_a_bad_setting_before_anything_trains(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        impact("dqn", 2, 400, "no-grad-clipping", tmp_path, sets=["batch_size=0"])
    assert not tmp_path.joinpath("runs").exists()
