"""The nightly learning-curve job: run a profile's suite, compare with the reference,
write the report; or (`write_reference`) make the reference and calibrate the rule.

Output folder layout::

    OUT/manifest.json        what this run is (profile, jobs, baseline)
    OUT/jobs/<job>.json      one record per finished job, written atomically on arrival
    OUT/runs/<job>/          the trainer's run folder (summary.json, metrics.jsonl)
    OUT/plots/<entry>.png    OUT/report.md  OUT/report.html  OUT/verdict.json

`resume=True` keeps every stored "ok" record whose job is still the profile's job and runs
the rest (crashed, interrupted or never started).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlbench.curves.compare import IMPROVED, REGRESSED, Rule, compare, verdict_rates
from rlbench.curves.executors import Executor, make_executor
from rlbench.curves.profiles import Entry, Profile
from rlbench.curves.records import (
    ERROR,
    INCOMPLETE,
    OK,
    BaselineError,
    CurveSet,
    Job,
    JobRecord,
    Reference,
    load_reference,
    machine,
    now,
    provenance,
)
from rlbench.curves.report import EntryResult, ReportContext, write_report
from rlbench.processes import sigterm_as_interrupt
from rlbench.runs import atomic_write_json, git_state, package_versions

REFERENCE_DIR = Path(__file__).parent / "references"


def default_baseline(profile: str) -> Path:
    """The committed reference file of a profile (shipped as package data)."""
    return REFERENCE_DIR / f"{profile}.json"


def load_average() -> float | None:
    """1-minute load average, recorded before the jobs start: wall times from a machine that
    other work keeps busy are pessimistic, and the report says by how much it was busy."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # not available on this platform
        return None


def _git_commit() -> str:
    """Short commit of the running tree, '+dirty' when it has uncommitted changes."""
    state = git_state()
    if state["commit"] is None:
        return "?"
    return state["commit"][:7] + ("+dirty" if state["dirty"] else "")


class JobProgress:
    """`[nightly quick] 7/20 jobs (1 failed)  elapsed 3m12s  eta 5m40s  last: ...` on stderr.

    Jobs differ in cost by 5x (DQN vs SAC), so the time left weighs every pending job by
    the mean CPU time its entry's finished jobs took (all finished jobs' mean until one of
    its entry has finished) and converts with the throughput observed so far.
    """

    def __init__(self, label: str, pending: Sequence[Job], done: int, enabled: bool = True) -> None:
        self.label, self.pending, self.enabled = label, {j.id: j for j in pending}, enabled
        self.total, self.done, self.resumed = len(pending) + done, done, done
        self.errors, self.start = 0, time.monotonic()
        self.cost: dict[str, list[float]] = {}  # entry -> CPU seconds of its finished jobs

    def _weight(self, entry: str) -> float:
        seen = self.cost.get(entry) or [c for costs in self.cost.values() for c in costs]
        return sum(seen) / len(seen) if seen else 1.0

    def eta(self) -> float:
        finished = sum(self._weight(e) * len(c) for e, c in self.cost.items())
        left = sum(self._weight(j.entry) for j in self.pending.values())
        return (time.monotonic() - self.start) * left / finished if finished else math.inf

    def update(self, record: JobRecord) -> None:
        self.done += 1
        self.errors += record.status != OK
        self.pending.pop(record.job.id, None)
        cost = record.cpu_seconds or record.wall_seconds
        if cost:
            self.cost.setdefault(record.job.entry, []).append(cost)
        if not self.enabled:
            return
        last = (f"final {record.returns[-1]:.1f}" if record.status == OK
                else (record.error or "").splitlines()[0][:80] if record.error else "")
        print(f"[{self.label}] {self.done}/{self.total} jobs"
              f"{f' ({self.errors} failed)' if self.errors else ''}  "
              f"elapsed {_dur(time.monotonic() - self.start)}  eta {_dur(self.eta())}  "
              f"last: {record.job.entry} seed {record.job.seed} {record.status} {last}",
              file=sys.stderr, flush=True)


def _dur(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


def run_jobs(
    jobs: Sequence[Job], out: Path, executor: Executor, resume: bool, label: str,
    progress: bool = True,
) -> tuple[dict[str, JobRecord], bool, int]:
    """Run what is not done yet; (records by job id, interrupted?, jobs reused by resume).
    Jobs that never finished come back as "incomplete" records."""
    jobs_dir = out / "jobs"
    records: dict[str, JobRecord] = {}
    for job in jobs:
        path = jobs_dir / f"{job.id}.json"
        if not path.is_file():
            continue
        if not resume:  # a fresh run never mixes in yesterday's results
            path.unlink()
            continue
        try:
            stored = JobRecord.from_dict(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError):
            continue  # unreadable record: run the job again
        if stored.status == OK and stored.job.same_run(job):
            records[job.id] = stored
    reused = len(records)
    pending = [j for j in jobs if j.id not in records]
    bar = JobProgress(label, pending, reused, progress)

    def on_result(record: JobRecord) -> None:
        atomic_write_json(jobs_dir / f"{record.job.id}.json", {**record.to_dict(), "git": git_state()})
        records[record.job.id] = record
        bar.update(record)

    interrupted = False
    try:
        with sigterm_as_interrupt():
            executor.run(pending, out / "runs", on_result)
    except KeyboardInterrupt:
        interrupted = True
    for job in jobs:
        if job.id not in records:
            records[job.id] = JobRecord(job, INCOMPLETE, error="the run was interrupted before "
                                        "this job finished")
    return records, interrupted, reused


def _entry_records(entry: Entry, seeds: Sequence[int], records: dict[str, JobRecord]) -> list[JobRecord]:
    return [records[entry.job(s).id] for s in seeds]


def _candidate(entry: Entry, recs: list[JobRecord]) -> CurveSet | None:
    return CurveSet.from_records(entry.name, recs, entry.range) if any(r.status == OK for r in recs) else None


def _judge(entry: Entry, recs: list[JobRecord], reference: CurveSet, rule: Rule,
           note: str = "") -> EntryResult:
    statuses = {r.status for r in recs}
    cand = _candidate(entry, recs)
    if ERROR in statuses or INCOMPLETE in statuses:
        verdict = ERROR if ERROR in statuses else INCOMPLETE
        return EntryResult(entry.name, verdict, recs, cand, reference, note=note)
    try:
        comparison = compare(cand, reference, rule)
    except BaselineError as exc:  # e.g. the trainer's eval schedule changed: say so, per entry
        return EntryResult(entry.name, ERROR, recs, cand, reference, note=note, error=str(exc))
    return EntryResult(entry.name, comparison.verdict, recs, cand, reference, comparison, note)


def check_baseline(profile: Profile, reference: Reference, path: Path) -> None:
    """Fail before any training when the baseline cannot judge this profile."""
    for entry in profile.entries:
        if entry.name not in reference.entries:
            raise BaselineError(
                f"baseline {path} has no entry {entry.name!r} (it has: "
                f"{', '.join(reference.entries)}); regenerate it with --write-reference"
            )
        ref = reference.entries[entry.name]
        want = json.loads(json.dumps(entry.job(0).to_dict()["changes"], default=list))
        have = json.loads(json.dumps(ref.changes, default=list))
        if want != have:
            raise BaselineError(
                f"baseline {path}: entry {entry.name!r} was made with {have}, the profile "
                f"now runs {want}; regenerate the reference with --write-reference"
            )


def nightly(
    profile: Profile,
    out: str | Path,
    baseline: str | Path | None = None,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> int:
    """Run the suite and write the report; the exit status (0 pass, 1 regressed, 3 error or
    incomplete). Raises KeyboardInterrupt after writing an "incomplete" report."""
    out = Path(out)
    path = Path(baseline) if baseline is not None else default_baseline(profile.name)
    reference = load_reference(path)
    check_baseline(profile, reference, path)
    runner = make_executor(executor, jobs, address)
    started, t0, load = now(), time.monotonic(), load_average()
    suite = profile.jobs()
    atomic_write_json(out / "manifest.json", {
        "profile": profile.name, "baseline": str(path), "started": started,
        "jobs": [j.to_dict() for j in suite]})
    for stale in ("verdict.json", "report.md", "report.html"):
        (out / stale).unlink(missing_ok=True)  # never leave an old verdict next to new runs
    records, interrupted, reused = run_jobs(suite, out, runner, resume, f"nightly {profile.name}",
                                            progress)
    entries = [_judge(e, _entry_records(e, profile.seeds, records), reference.entries[e.name],
                      profile.rule) for e in profile.entries]
    ctx = ReportContext(
        title=f"rlbench nightly — profile {profile.name}", profile=profile.name,
        rule=profile.rule, baseline=str(path), baseline_meta=reference.meta,
        calibration=reference.calibration,
        run={"started": started, "finished": now(), "wall_seconds": time.monotonic() - t0,
             "executor": executor, "jobs": jobs, "n_jobs": len(suite), "resumed": reused,
             "machine": machine(), "load_at_start": load, "git_commit": _git_commit(),
             "versions": package_versions(), **provenance(records.values())},
    )
    verdict, code = write_report(out, ctx, entries)
    if progress:
        print(f"nightly {profile.name}: {verdict} — {out / 'report.md'}", file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt
    return code


def calibrate(
    profile: Profile, reference: dict[str, CurveSet], faulty: dict[str, CurveSet],
    trials: int = 300,
) -> dict[str, Any]:
    """Measure the rule on real runs: A/A false alarms per entry, power per fault probe.

    A/A splits each entry's reference pool into a nightly-sized candidate set and a
    disjoint reference set of the remaining seeds. Power compares each probe's faulty runs
    with reference subsets of that same size, so both numbers describe one configuration.
    """
    n = len(profile.seeds)
    out: dict[str, Any] = {"rule": profile.rule.to_dict(), "machine": machine(),
                           "created": now(), "aa": {}, "power": {}}
    for name, pool in reference.items():
        rates = verdict_rates(pool, None, n, pool.n - n, profile.rule, trials)
        out["aa"][name] = rates.to_dict() | {
            "false_alarm_rate": rates.rate(REGRESSED) + rates.rate(IMPROVED),
            "false_alarm_ci": rates.interval(REGRESSED, IMPROVED)}
    for probe in profile.probes:
        pool = reference[probe.entry.name]
        fault = faulty[probe.faulty.name]
        rates = verdict_rates(fault, pool, min(n, fault.n), pool.n - n, profile.rule, trials)
        out["power"][probe.faulty.name] = rates.to_dict() | {
            "fault": probe.fault, "entry": probe.entry.name,
            "power": rates.rate(REGRESSED), "power_ci": rates.interval(REGRESSED)}
    return out


def write_reference(
    profile: Profile,
    path: str | Path,
    out: str | Path,
    executor: str = "local",
    jobs: int = 1,
    address: str | None = None,
    resume: bool = False,
    progress: bool = True,
) -> int:
    """Run the reference seeds and the fault probes, calibrate the rule on them, write the
    reference file to `path` and a calibration report (probes vs reference) to `out`."""
    out, path = Path(out), Path(path)
    runner = make_executor(executor, jobs, address)
    started, t0, load = now(), time.monotonic(), load_average()
    suite = profile.reference_jobs()
    records, interrupted, reused = run_jobs(suite, out, runner, resume,
                                            f"reference {profile.name}", progress)
    failed = [r for r in records.values() if r.status != OK]
    if interrupted:
        raise KeyboardInterrupt
    if failed:
        listing = "; ".join(f"{r.job.id}: {r.status} {(r.error or '').splitlines()[0]}"
                            for r in failed[:5])
        raise RuntimeError(f"{len(failed)} reference job(s) did not finish, no reference "
                           f"written ({listing}); fix and re-run with --resume")
    ref_sets = {e.name: CurveSet.from_records(e.name, _entry_records(e, profile.reference_seeds,
                                                                     records), e.range)
                for e in profile.entries}
    fault_sets = {p.faulty.name: CurveSet.from_records(
        p.faulty.name, _entry_records(p.faulty, profile.seeds, records), p.faulty.range)
        for p in profile.probes}
    calibration = calibrate(profile, ref_sets, fault_sets)
    wall = time.monotonic() - t0
    made = provenance(records.values())
    meta = {"machine": machine(), "created": now(), "git_commit": _git_commit(),
            "versions": package_versions(), "wall_seconds": wall, "jobs": jobs,
            "executor": executor, "seeds": list(profile.reference_seeds),
            "resumed_jobs": reused, **made}
    if made["mixed_machines"] and progress:
        print(f"reference {profile.name}: its jobs ran on {len(made['job_machines'])} machines "
              f"({', '.join(made['job_machines'])}); the reference records that", file=sys.stderr)
    reference = Reference(profile.name, ref_sets, meta, calibration)
    atomic_write_json(path, reference.to_dict())
    entries = [_judge(p.faulty, _entry_records(p.faulty, profile.seeds, records),
                      ref_sets[p.entry.name], profile.rule,
                      note=f"fault probe ({p.fault}): should regress")
               for p in profile.probes]
    entries += [EntryResult(e.name, "reference", _entry_records(e, profile.reference_seeds, records),
                            None, ref_sets[e.name]) for e in profile.entries]
    ctx = ReportContext(
        title=f"rlbench reference + calibration — profile {profile.name}", profile=profile.name,
        rule=profile.rule, baseline=str(path), baseline_meta=meta, calibration=calibration,
        reference_written=str(path),
        run={"started": started, "finished": now(), "wall_seconds": wall, "executor": executor,
             "jobs": jobs, "n_jobs": len(suite), "resumed": reused, "machine": machine(),
             "load_at_start": load},
    )
    write_report(out, ctx, entries)
    if progress:
        print(f"reference {profile.name}: wrote {path}; calibration report {out / 'report.md'}",
              file=sys.stderr)
    return 0
