"""The kill matrix (`rlbench faults verify`): run each fault's detectors with it on, and all
detectors once clean, each in a fresh pytest process.

A fault is *killed* when at least one of its detectors ran and failed in its test body (its
``call`` phase failed, as pytest's own report log says: pytest-reportlog). Failing to import
or collect, a fixture error, a detector that did not run, or a process that hit the time
limit is **not** a kill: those would be fake kills (the suite did not catch the bug, it fell
over). All detectors also run once more, clean, in ONE process over their union; every one
must pass there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlbench.faults.catalogue import CATALOGUE, ENV_VAR, Fault
from rlbench.faults.detectors import detector_problems, project_root, with_detectors
from rlbench.processes import parallel, run_group
from rlbench.tables import text_table

DEFAULT_TIMEOUT_S = 300.0
"""Per-pytest-process limit in `verify`; detectors are meant to take seconds."""

CLEAN_TIMEOUT_FACTOR = 3
"""The clean run executes every detector in one process: it gets this many times the limit."""



@dataclass(frozen=True)
class PytestRun:
    """One pytest process: per-detector outcome, exit status, time, output tail."""

    outcomes: dict[str, str]
    """Detector node id → passed | failed | error | skipped | not run."""
    returncode: int | None
    """pytest's exit status; None when the process was killed at the time limit."""
    seconds: float
    tail: str
    """Last lines of pytest's output, for notes."""

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


REPORT_LOG_PLUGIN = "pytest_reportlog"
"""pytest-reportlog (`--report-log=FILE`): pytest's own test reports as JSON lines. Loaded with
``-p`` by its entry-point name, so it also runs where plugin autoloading is off."""


def parse_report_log(path: Path, nodeids: Iterable[str]) -> dict[str, str]:
    """Outcome of each requested node id from a pytest-reportlog file (JSON lines; one
    ``TestReport`` per test and phase, with pytest's own ``nodeid``, ``when``, ``outcome``).

    A test *failed* if its ``call`` phase failed, *error*-ed if its setup or teardown failed
    (a fixture, not the test body), was *skipped* if setup or call was skipped, and *passed*
    otherwise. A node id may stand for several tests (a parametrised test, a class, a file):
    it *failed* if any test failed, *error* if any errored and none failed, *passed* if at
    least one passed and none failed or errored, *skipped* if all were skipped, *not run* if
    no test matches (deselected, not collected, a module that failed to import).
    """
    phases: dict[str, dict[str, str]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a killed process
                continue
            if record.get("$report_type") == "TestReport":
                phases.setdefault(record["nodeid"], {})[record["when"]] = record["outcome"]
    tests: list[tuple[str, str]] = []
    for nodeid, by_when in phases.items():
        outcome = (
            "failed" if by_when.get("call") == "failed"
            else "error" if "failed" in (by_when.get("setup"), by_when.get("teardown"))
            else "skipped" if "skipped" in (by_when.get("setup"), by_when.get("call"))
            else "passed"
        )
        tests.append((nodeid, outcome))
    result = {}
    for want in nodeids:
        got = {o for name, o in tests
               if name == want or name.startswith(want + "::") or name.startswith(want + "[")}
        result[want] = next(
            (o for o in ("failed", "error", "passed", "skipped") if o in got), "not run"
        )
    return result


def run_pytest(
    nodeids: Sequence[str],
    root: Path,
    fault: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> PytestRun:
    """Run `nodeids` in a fresh pytest process in `root` with exactly `fault` switched on
    (none when None; an inherited RLBENCH_FAULTS is removed), killing the whole process
    group at `timeout` seconds so a hung detector (or a child it spawned) cannot hang verify.
    """
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env.setdefault("MUJOCO_GL", "disable")
    if fault is not None:
        env[ENV_VAR] = fault
    if importlib.util.find_spec(REPORT_LOG_PLUGIN) is None:
        raise ModuleNotFoundError(
            "rlbench faults verify reads pytest's report log: pip install pytest-reportlog "
            "(it is in rlbench's test dependency group)", name=REPORT_LOG_PLUGIN)
    with tempfile.TemporaryDirectory(prefix="rlbench-verify-") as tmp:
        log = Path(tmp) / "report.jsonl"
        cmd = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=line",
            "-p", REPORT_LOG_PLUGIN, f"--report-log={log}", *nodeids,
        ]
        start = time.perf_counter()
        returncode, output, _ = run_group(cmd, timeout, cwd=root, env=env,
                                           stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
        outcomes = parse_report_log(log, nodeids)
    tail = "\n".join(output.strip().splitlines()[-15:])
    return PytestRun(outcomes, returncode, seconds, tail)


# --------------------------------------------------------------------------- kill matrix


@dataclass(frozen=True)
class KillResult:
    """One row of the kill matrix."""

    id: str
    killed: bool
    """At least one detector ran and failed in its body with the fault on."""
    detectors: tuple[str, ...]
    clean_passed: bool
    """Every detector passed in the clean run."""
    seconds: float
    """Wall time of the fault-on pytest process."""
    failed: tuple[str, ...] = ()
    """Detectors that failed with the fault on."""
    note: str = ""
    """Why a row is not green: no detectors, timeout, collection error, ..."""

    @property
    def ok(self) -> bool:
        return self.killed and self.clean_passed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kill_row(fault: Fault, bad: dict[str, str], clean: PytestRun | None,
              run: PytestRun | None) -> KillResult:
    detectors = fault.detectors
    if not detectors:
        return KillResult(fault.id, False, (), False, 0.0,
                          note="no detectors: add fast failing tests to its catalogue row")
    notes = [f"{d}: {bad[d]}" for d in detectors if d in bad]
    clean_outcomes = (
        {d: "unusable" if d in bad else clean.outcomes[d] for d in detectors} if clean else {}
    )
    clean_passed = (
        clean is not None and not clean.timed_out
        and all(o == "passed" for o in clean_outcomes.values())
    )
    if clean is not None and clean.timed_out:
        notes.append("clean run timed out")
    notes += [f"clean {d}: {o}" for d, o in clean_outcomes.items()
              if o not in ("passed", "unusable")]
    if run is None:  # every detector unusable: nothing ran
        return KillResult(fault.id, False, detectors, clean_passed, 0.0, note="; ".join(notes))
    failed = tuple(d for d in detectors if run.outcomes.get(d) == "failed")
    if run.timed_out:
        # A hang is not a kill: CI would hang too. Detectors must fail fast.
        notes.append(f"timeout after {run.seconds:.0f} s (not counted as killed)")
        failed = ()
    elif not failed:
        seen = {d: run.outcomes.get(d, "unusable") for d in detectors if d not in bad}
        notes.append("survived: " + ", ".join(f"{d} {o}" for d, o in seen.items()))
        if any(o == "error" for o in seen.values()) or run.returncode in (2, 3, 4):
            last = run.tail.splitlines()[-1] if run.tail else f"exit {run.returncode}"
            notes.append(f"errors (import, collection, fixtures) are not kills: {last}")
    return KillResult(fault.id, bool(failed), detectors, clean_passed, round(run.seconds, 2),
                      failed, "; ".join(notes))


def kill_matrix(
    faults: Sequence[Fault] = CATALOGUE,
    root: Path | None = None,
    jobs: int = 2,
    timeout: float = DEFAULT_TIMEOUT_S,
    on_result: Callable[[str, PytestRun], None] | None = None,
) -> tuple[list[KillResult], PytestRun | None]:
    """Run the kill matrix for `faults`: one clean pytest process over the union of all
    usable detectors plus one fault-on process per fault, up to `jobs` at a time.

    Returns the rows (catalogue order) and the clean run (None when nothing could run).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    root = root or project_root()
    faults = with_detectors(faults, root)
    bad = detector_problems(faults, root)
    usable = {f.id: [d for d in f.detectors if d not in bad] for f in faults}
    union = list(dict.fromkeys(d for ds in usable.values() for d in ds))

    def job(fault_id: str | None, nodeids: list[str]) -> PytestRun:
        limit = timeout if fault_id else timeout * CLEAN_TIMEOUT_FACTOR
        run = run_pytest(nodeids, root, fault_id, limit)
        if on_result is not None:
            on_result(fault_id or "clean", run)
        return run

    # The clean union run is the longest: first in the queue so it overlaps the rest.
    calls = [lambda: (None, job(None, union))] if union else []
    calls += [lambda fid=fid, ds=ds: (fid, job(fid, ds)) for fid, ds in usable.items() if ds]
    runs = dict(parallel(jobs, calls))
    clean = runs.pop(None, None)
    rows = [_kill_row(f, bad, clean, runs.get(f.id)) for f in faults]
    return rows, clean


def format_kill_matrix(rows: Sequence[KillResult], clean: PytestRun | None) -> str:
    table = text_table(
        [[r.id, "yes" if r.killed else "NO", len(r.detectors),
          "yes" if r.clean_passed else "NO" if r.detectors else "-", f"{r.seconds:.1f}",
          r.note] for r in rows],
        ["fault", "killed", "detectors", "clean pass", "seconds", "note"],
    )
    killed = sum(r.killed for r in rows)
    clean_line = (
        "clean run: none (no usable detectors)" if clean is None else
        f"clean run: {sum(o == 'passed' for o in clean.outcomes.values())}/"
        f"{len(clean.outcomes)} detectors passed in {clean.seconds:.1f} s"
        + (" (TIMED OUT)" if clean.timed_out else "")
    )
    verdict = "OK" if rows and all(r.ok for r in rows) else "FAILED"
    return f"{table}\n\n{clean_line}\nkilled {killed}/{len(rows)} faults: {verdict}"


