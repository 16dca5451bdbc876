"""The report: every plot it promises exists, verdicts and exit statuses, crashed and
interrupted jobs reported as such. Curve sets are test fixtures built in the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlbench.curves.compare import Rule, compare
from rlbench.curves.records import ERROR, INCOMPLETE, OK, CurveSet, Job, JobRecord
from rlbench.curves.report import (
    EXIT_OK,
    EXIT_REGRESSED,
    EXIT_UNFINISHED,
    EntryResult,
    ReportContext,
    overall,
    write_report,
)
from tests.curves.test_curves_compare import curve_set

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _records(curves: CurveSet, statuses: dict[int, str] | None = None) -> list[JobRecord]:
    statuses = statuses or {}
    out = []
    for i, seed in enumerate(curves.seeds):
        job = Job(curves.name, curves.algo, seed, (("env_id", curves.env),))
        status = statuses.get(seed, OK)
        if status == OK:
            out.append(JobRecord(job, OK, tuple(int(s) for s in curves.steps),
                                 tuple(curves.returns[i]), 12.0, 1500.0))
        else:
            out.append(JobRecord(job, status, error=f"{status} on purpose"))
    return out


def _entry(name: str, candidate: CurveSet, reference: CurveSet, note: str = "") -> EntryResult:
    c = CurveSet(name, candidate.algo, candidate.env, candidate.seeds, candidate.steps,
                 candidate.returns, candidate.score_range)
    r = CurveSet(name, reference.algo, reference.env, reference.seeds, reference.steps,
                 reference.returns, reference.score_range)
    comparison = compare(c, r)
    return EntryResult(name, comparison.verdict, _records(c), c, r, comparison, note)


def _ctx() -> ReportContext:
    calibration = {
        "machine": "test", "created": "now",
        "aa": {"dqn/CartPole-v1": {"trials": 100, "counts": {"pass": 98, "regressed": 1,
                                                             "improved": 1},
                                   "n_candidate": 5, "n_reference": 5,
                                   "pool": {"candidate": 10, "reference": 10},
                                   "false_alarm_rate": 0.02, "false_alarm_ci": [0.002, 0.07]}},
        "power": {"dqn[fault=target-not-updated]/CartPole-v1": {
            "trials": 100, "counts": {"pass": 10, "regressed": 90, "improved": 0},
            "n_candidate": 5, "n_reference": 5, "pool": {}, "fault": "target-not-updated",
            "power": 0.9, "power_ci": [0.82, 0.95]}},
    }
    return ReportContext("test report", "quick", Rule(), "ref.json", {"machine": "m"},
                         calibration, {"executor": "local", "jobs": 2})


def test_report_contains_each_plot_it_promises(tmp_path: Path) -> None:
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    entries = [
        _entry("dqn/CartPole-v1", curve_set(0.6, 5, seed=2), reference),
        _entry("iqn/CartPole-v1", curve_set(0.2, 5, seed=3), reference),
        EntryResult("sac/dmc:cartpole-swingup", ERROR,
                    _records(curve_set(0.6, 5, seed=4), {2: ERROR}), None, reference),
    ]
    write_report(tmp_path, _ctx(), entries)
    md = (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    md_images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    html_images = re.findall(r'<img src="([^"]+)"', page)
    assert len(md_images) == len(entries) and sorted(md_images) == sorted(html_images)
    for rel in md_images:
        assert (tmp_path / rel).read_bytes()[:8] == PNG_MAGIC
    verdict = json.loads((tmp_path / "verdict.json").read_text())
    assert sorted(e["plot"] for e in verdict["entries"].values()) == sorted(md_images)
    # The measured error rates are printed, and the crashed job is named with its error.
    assert "False alarms (A/A)" in md and "2.0%" in md and "90.0%" in md
    assert "error on purpose" in md and "Jobs that did not finish" in page


def test_report_regression_exits_1(tmp_path: Path) -> None:
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    entries = [_entry("dqn/CartPole-v1", curve_set(0.6, 5, seed=2), reference),
               _entry("iqn/CartPole-v1", curve_set(0.2, 5, seed=3), reference)]
    verdict, code = write_report(tmp_path, _ctx(), entries)
    assert (verdict, code) == ("regressed", EXIT_REGRESSED)
    stored = json.loads((tmp_path / "verdict.json").read_text())
    assert stored["exit_status"] == 1
    assert stored["entries"]["iqn/CartPole-v1"]["verdict"] == "regressed"
    assert stored["entries"]["dqn/CartPole-v1"]["verdict"] == "pass"


@pytest.mark.parametrize("status, expected", [(ERROR, "error"), (INCOMPLETE, "incomplete")])
def test_report_unfinished_job_is_neither_pass_nor_regression(
    tmp_path: Path, status: str, expected: str
) -> None:
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    ok = _entry("dqn/CartPole-v1", curve_set(0.6, 5, seed=2), reference)
    broken = EntryResult("iqn/CartPole-v1", status,
                         _records(curve_set(0.6, 5, seed=3), {1: status}), None, reference)
    verdict, code = write_report(tmp_path, _ctx(), [ok, broken])
    assert (verdict, code) == (expected, EXIT_UNFINISHED)
    stored = json.loads((tmp_path / "verdict.json").read_text())["entries"]["iqn/CartPole-v1"]
    assert stored["comparison"] is None and stored["errors"] == {"1": f"{status} on purpose"}


def test_report_overall_precedence() -> None:
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    ok = _entry("a", curve_set(0.6, 5, seed=2), reference)
    better = _entry("b", curve_set(0.95, 5, seed=4, spread=0.02), reference)
    bad = _entry("c", curve_set(0.2, 5, seed=3), reference)
    crashed = EntryResult("d", ERROR, [], None, reference)
    probe = _entry("e", curve_set(0.2, 5, seed=3), reference, note="fault probe")
    assert overall([ok]) == ("pass", EXIT_OK)
    assert overall([ok, better]) == ("improved", EXIT_OK)
    assert overall([ok, crashed]) == ("error", EXIT_UNFINISHED)
    assert overall([bad, crashed]) == ("regressed", EXIT_REGRESSED)
    assert overall([ok, probe]) == ("pass", EXIT_OK)  # a fault probe regressing is expected


def test_report_uncomparable_entry_is_an_error_not_a_crash(tmp_path: Path) -> None:
    # A trainer change that moves the eval schedule makes the finished curves incomparable
    # with the reference: the entry says so, the rest of the report is still written.
    from rlbench.curves.nightly import _judge
    from rlbench.curves.profiles import Entry

    entry = Entry("dqn", "CartPole-v1", (("total_steps", 20_000),))
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    longer = curve_set(0.6, 5, seed=2)
    records = [JobRecord(entry.job(s), OK, tuple(int(x) * 2 for x in longer.steps),
                         tuple(longer.returns[i])) for i, s in enumerate(longer.seeds)]
    result = _judge(entry, records, reference, Rule())
    assert result.verdict == ERROR and "different training budgets" in result.error
    verdict, code = write_report(tmp_path, _ctx(), [result])
    assert (verdict, code) == ("error", EXIT_UNFINISHED)
    assert "different training budgets" in (tmp_path / "report.md").read_text()


def test_report_warns_when_the_baseline_mixes_machines(tmp_path: Path) -> None:
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    ctx = _ctx()
    ctx.baseline_meta.update(job_machines={"a": 6, "b": 4}, mixed_machines=True,
                             jobs_finished=["2026-12-01T02:00:00Z", "2026-12-02T03:00:00Z"])
    write_report(tmp_path, ctx, [_entry("dqn/CartPole-v1", curve_set(0.6, 5, seed=2), reference)])
    md = (tmp_path / "report.md").read_text()
    assert "The baseline's jobs ran on 2 machines" in md and "a (6 jobs), b (4 jobs)" in md
    assert "This run's jobs ran on" not in md  # the run itself did not mix
    assert "kept from an interrupted run" not in md


def test_report_says_when_the_baseline_was_finished_by_resume(tmp_path: Path) -> None:
    reference = curve_set(0.6, 10, seed=1, first_seed=100)
    ctx = _ctx()
    ctx.baseline_meta.update(resumed_jobs=63, mixed_machines=False,
                             jobs_finished=["2026-12-03T06:11:31Z", "2026-12-03T08:24:47Z"])
    write_report(tmp_path, ctx, [_entry("dqn/CartPole-v1", curve_set(0.6, 5, seed=2), reference)])
    md = (tmp_path / "report.md").read_text()
    assert ("63 of its jobs were kept from an interrupted run by --resume, so its jobs "
            "finished between 2026-12-03T06:11:31Z and 2026-12-03T08:24:47Z") in md
