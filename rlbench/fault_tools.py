"""Tooling over the fault catalogue: the kill matrix (`rlbench faults verify`) and the
learning-impact measurement (`rlbench faults impact`).

Kill matrix. For every fault, its detector tests run in a fresh ``pytest`` process with
``RLBENCH_FAULTS=<id>``; the fault is *killed* when at least one of its detectors ran and
failed in its test body (a JUnit ``<failure>``). Failing to import or collect, a fixture
error, a detector that did not run, or a process that hit the time limit is **not** a kill:
those would be fake kills (the suite did not catch the bug, it fell over). All detectors
also run once more, clean, in ONE process over their union; every one must pass there.

Impact. Each fault that lives in an algorithm's code path is switched on for a few seeds of
a real training run (``rlbench train`` in a subprocess), and its final eval return is
compared with clean runs of the same seeds: mean difference with a bootstrap 95% CI.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlbench.faults import BY_ID, CATALOGUE, ENV_VAR, Fault, parse_faults

KILL_MATRIX_TEST = "tests/faults/test_kill_matrix.py"
"""The test that runs `verify` itself: it can never be a detector (it would recurse)."""

DEFAULT_TIMEOUT_S = 300.0
"""Per-pytest-process limit in `verify`; detectors are meant to take seconds."""

CLEAN_TIMEOUT_FACTOR = 3
"""The clean run executes every detector in one process: it gets this many times the limit."""


def project_root() -> Path:
    """The checkout that holds `tests/` (detector node ids are relative to it)."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "tests").is_dir() else Path.cwd()


def _table(rows: list[list[Any]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(lines + [fmt.format(*map(str, r)) for r in rows])


def _short_source(fault: Fault) -> str:
    doc = Path(fault.source).stem.split("-")[0]  # "training" / "multiprocessing"
    return {"training": "analysis"}.get(doc, doc) + " " + fault.item


# --------------------------------------------------------------------------- child processes

_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def _run_group(cmd: list[str], timeout: float, **popen: Any) -> tuple[int | None, str, str]:
    """Run `cmd` in its own process group; at `timeout` kill the whole group (a hung test or
    trainer and every child it spawned). Returns (exit status or None on timeout, stdout,
    stderr)."""
    popen.setdefault("stderr", subprocess.PIPE)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True,
                            **popen)
    with _live_lock:
        _live.add(proc)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err or ""
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        out, err = proc.communicate()
        return None, out, err or ""
    finally:
        with _live_lock:
            _live.discard(proc)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone


def _parallel(jobs: int, calls: list[Callable[[], Any]]) -> Iterator[Any]:
    """Run `calls` on `jobs` threads (they only wait on child processes), yielding results
    as they complete. If the caller stops early (Ctrl-C, SIGTERM, an error), queued calls
    are cancelled and running child process groups are killed: their own sessions would
    otherwise outlive us."""
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(c) for c in calls]
    try:
        for fut in as_completed(futures):
            yield fut.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        # Kill until every call has returned: one may be starting its process right now.
        # (cancelled futures never count as done for wait(): leave them out)
        while wait([f for f in futures if not f.cancelled()], timeout=0.2).not_done:
            with _live_lock:
                for proc in list(_live):
                    _kill_group(proc)
        pool.shutdown(wait=True)


def _terminate_as_interrupt() -> None:
    """SIGTERM → KeyboardInterrupt in the CLI, so `_parallel` cleans up its children."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)


# --------------------------------------------------------------------------- detectors


def _marked_slow(decorators: Iterable[ast.expr]) -> bool:
    return any("slow" in ast.unparse(d) for d in decorators)


def detector_problem(nodeid: str, root: Path) -> str | None:
    """Why `nodeid` cannot serve as a detector (None when it can), found by reading the
    test file's syntax tree: no import, so the check is instant and works on a broken tree.

    Checks: the file exists, the class/function named exists (a ``[param]`` suffix is
    stripped), it is not marked slow (the default run deselects slow tests, so it would
    never run), and it is not the kill-matrix test itself.
    """
    path, _, rest = nodeid.partition("::")
    if Path(path).as_posix() == KILL_MATRIX_TEST:
        return "the kill-matrix test cannot detect a fault (it runs verify itself)"
    file = root / path
    if not path.endswith(".py") or not file.is_file():
        return f"no test file {path}"
    try:
        tree = ast.parse(file.read_text(), filename=str(file))
    except SyntaxError as exc:
        return f"{path} does not parse: {exc.msg} (line {exc.lineno})"
    for node in tree.body:  # pytestmark = pytest.mark.slow at module level
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
        ) and "slow" in ast.unparse(node.value):
            return f"{path} is marked slow (deselected by the default run)"
    body: list[ast.stmt] = tree.body
    names = [n.split("[", 1)[0] for n in rest.split("::")] if rest else []
    for depth, name in enumerate(names):
        found = next(
            (n for n in body
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
             and n.name == name),
            None,
        )
        if found is None:
            where = "::".join([path, *names[:depth]])
            return f"no test {name!r} in {where}"
        if _marked_slow(found.decorator_list):
            return f"{'::'.join([path, *names[: depth + 1]])} is marked slow"
        body = found.body if isinstance(found, ast.ClassDef) else []
    return None


def detector_problems(
    faults: Sequence[Fault] = CATALOGUE, root: Path | None = None
) -> dict[str, str]:
    """Detector node id → problem, for every unusable detector of `faults`."""
    root = root or project_root()
    out = {}
    for fault in faults:
        for nodeid in fault.detectors:
            problem = detector_problem(nodeid, root)
            if problem:
                out[nodeid] = problem
    return out


# --------------------------------------------------------------------------- pytest runs


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


def _dotted(nodeid: str) -> str:
    """`tests/unit/test_x.py::TestK::test_m[p]` → `tests.unit.test_x.TestK.test_m[p]`, the
    form JUnit XML uses (classname + "." + name)."""
    path, _, rest = nodeid.partition("::")
    parts = [path.removesuffix(".py").replace("/", "."), *(rest.split("::") if rest else [])]
    return ".".join(parts)


def parse_junit(path: Path, nodeids: Iterable[str]) -> dict[str, str]:
    """Outcome of each requested node id from a JUnit XML report.

    A node id may stand for several test cases (a parametrised test, a class, a file): it
    *failed* if any case failed in its body, *error* if any case errored (setup, teardown,
    collection) and none failed, *passed* if at least one passed and none failed or errored,
    *skipped* if all were skipped, *not run* if no case matches (deselected, not collected).
    """
    cases: list[tuple[str, str]] = []
    if path.is_file():
        for case in ET.parse(path).getroot().iter("testcase"):
            kinds = {child.tag for child in case}
            outcome = (
                "failed" if "failure" in kinds
                else "error" if "error" in kinds
                else "skipped" if "skipped" in kinds
                else "passed"
            )
            cases.append((f"{case.get('classname', '')}.{case.get('name', '')}", outcome))
    result = {}
    for nodeid in nodeids:
        want = _dotted(nodeid)
        got = {o for name, o in cases
               if name == want or name.startswith(want + ".") or name.startswith(want + "[")}
        result[nodeid] = next(
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
    with tempfile.TemporaryDirectory(prefix="rlbench-verify-") as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=line",
            f"--junitxml={xml}", "-o", "junit_family=xunit2", *nodeids,
        ]
        start = time.perf_counter()
        returncode, output, _ = _run_group(cmd, timeout, cwd=root, env=env,
                                           stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
        outcomes = parse_junit(xml, nodeids)
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
    runs = dict(_parallel(jobs, calls))
    clean = runs.pop(None, None)
    rows = [_kill_row(f, bad, clean, runs.get(f.id)) for f in faults]
    return rows, clean


def format_kill_matrix(rows: Sequence[KillResult], clean: PytestRun | None) -> str:
    table = _table(
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


# --------------------------------------------------------------------------- impact


def bootstrap_diff_ci(
    fault_returns: Sequence[float], clean_returns: Sequence[float],
    confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0,
) -> tuple[float, float, float]:
    """Mean(fault) − mean(clean) and its percentile-bootstrap CI (seeded: reproducible).

    Independent resampling of the two groups: a fault changes the whole trajectory, so
    runs sharing a seed are not meaningfully paired. Percentile rather than BCa because
    BCa is undefined for the constant samples a capped return (CartPole's 500) often gives.
    With 5 seeds per group the interval is rough; read it as "clearly hurts" or not.
    """
    from scipy.stats import bootstrap

    x = np.asarray(fault_returns, dtype=float)
    y = np.asarray(clean_returns, dtype=float)
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"need >= 2 returns per group for a CI, got {len(x)} and {len(y)}")
    diff = float(x.mean() - y.mean())
    if np.ptp(x) == 0 and np.ptp(y) == 0:  # nothing to resample: the CI is the point
        return diff, diff, diff
    res = bootstrap(
        (x, y), lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        confidence_level=confidence, n_resamples=n_resamples, method="percentile",
        vectorized=True, rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return diff, float(ci.low), float(ci.high)


MIN_SEEDS_FOR_VERDICT = 5
"""Below this many seeds per group a percentile-bootstrap CI covers far less than 95%:
the numbers are still shown, the verdict says "too few seeds"."""


def verdict(low: float, high: float, n: int = MIN_SEEDS_FOR_VERDICT) -> str:
    """Plain-words reading of a CI of fault − clean from `n` seeds per group."""
    if n < MIN_SEEDS_FOR_VERDICT:
        return "too few seeds"
    if high < 0:
        return "hurts"
    if low > 0:
        return "helps"
    return "no clear effect"


@dataclass(frozen=True)
class Variant:
    """One arm of the impact study: a clean baseline or one fault, with its config setup."""

    name: str
    """"clean", "clean+<setup>" (a baseline for faults that need a setup), or the fault id."""
    fault: str | None
    setup: tuple[str, ...] = ()
    """NAME=VALUE settings from the fault's catalogue row (e.g. actors=2)."""
    baseline: str | None = None
    """The clean variant a fault is compared with: same setup, fault off."""


def impact_variants(algo: str, requested: str | Iterable[str] | None = None) -> list[Variant]:
    """Clean baselines (one per distinct setup) followed by each applicable fault."""
    faults = applicable_faults(algo, requested)

    def base(setup: tuple[str, ...]) -> str:
        return "clean" if not setup else "clean+" + ",".join(setup)

    setups = dict.fromkeys(f.setup for f in faults) or {(): None}
    return [Variant(base(s), None, s) for s in setups] + [
        Variant(f.id, f.id, f.setup, base(f.setup)) for f in faults
    ]


@dataclass
class ImpactRun:
    """One training run of the impact study."""

    variant: str
    seed: int
    status: str = "pending"  # ok | crashed | timeout
    final_eval_return: float | None = None
    seconds: float = 0.0
    error: str = ""
    out_dir: str = ""
    env: str = ""  # the env the trainer actually used (from its summary)


@dataclass
class ImpactRow:
    """One variant summarised over seeds."""

    id: str
    status: str  # ok | crashed
    returns: list[float] = field(default_factory=list)
    mean: float | None = None
    baseline: str | None = None
    diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    verdict: str = ""
    note: str = ""


def applicable_faults(algo: str, requested: str | Iterable[str] | None = None) -> list[Fault]:
    """Catalogue faults whose code path lives in `algo` (catalogue order), optionally only
    `requested` ones; a requested fault that does not apply is an error."""
    ids = parse_faults(requested) if requested else None
    if ids is not None:
        foreign = sorted(i for i in ids if algo not in BY_ID[i].algos)
        if foreign:
            raise ValueError(
                f"fault(s) {', '.join(foreign)} do not apply to {algo}: "
                + "; ".join(f"{i} applies to {', '.join(BY_ID[i].algos)}" for i in foreign)
            )
    return [f for f in CATALOGUE if algo in f.algos and (ids is None or f.id in ids)]


def _train_once(run: ImpactRun, variant: Variant, algo: str, steps: int, env_id: str | None,
                sets: Sequence[str], timeout: float) -> ImpactRun:
    """`rlbench train` in a fresh process: a fault that kills the trainer (or its child
    processes) takes only this run down, and a hang ends at `timeout`."""
    out = Path(run.out_dir)
    (out / "summary.json").unlink(missing_ok=True)  # never read a previous study's verdict
    cmd = [sys.executable, "-m", "rlbench.cli", "train", algo, "--steps", str(steps),
           "--seed", str(run.seed), "--out", str(out), "--quiet"]
    if env_id:
        cmd += ["--env", env_id]
    if variant.fault:
        cmd += ["--faults", variant.fault]
    for kv in (*variant.setup, *sets):  # the user's --set wins over the catalogue's setup
        cmd += ["--set", kv]
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    # One thread per run: parallelism comes from --jobs, and oversubscribing 2 cores with
    # intra-op threads only slows every run down.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    env.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    env.setdefault("MUJOCO_GL", "disable")
    start = time.perf_counter()
    returncode, _, stderr = _run_group(cmd, timeout, env=env)
    run.seconds = time.perf_counter() - start
    if returncode is None:
        run.status, run.error = "timeout", f"no result after {timeout:.0f} s"
        return run
    summary_path = out / "summary.json"
    if returncode == 0 and summary_path.is_file():
        summary = json.loads(summary_path.read_text())
        value, run.env = summary.get("final_eval_return"), str(summary.get("env", ""))
        if value is not None and np.isfinite(value):
            run.status, run.final_eval_return = "ok", float(value)
            return run
        run.status, run.error = "crashed", f"final_eval_return is {value!r}"
        return run
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    run.status = "crashed"
    run.error = f"exit {returncode}: {lines[-1] if lines else 'no output'}"
    return run


def summarise_impact(runs: Sequence[ImpactRun], variants: Sequence[Variant]) -> list[ImpactRow]:
    """One row per variant, in order. A variant with any crashed/hung seed is reported as
    "crashed" (no number: the surviving seeds would be a biased sample); a fault is compared
    with its own clean baseline (same setup)."""
    by_variant: dict[str, list[ImpactRun]] = {v.name: [] for v in variants}
    for r in runs:
        by_variant[r.variant].append(r)
    rows: dict[str, ImpactRow] = {}
    for v in variants:  # baselines come first, so they are summarised before their faults
        group = sorted(by_variant[v.name], key=lambda r: r.seed)
        bad = [r for r in group if r.status != "ok"]
        if bad or not group:
            reasons = sorted({r.error for r in bad})
            rows[v.name] = ImpactRow(v.name, "crashed", baseline=v.baseline,
                                     note=f"{len(bad)}/{len(group)} seeds: " + " | ".join(reasons))
            continue
        returns = [float(r.final_eval_return) for r in group]  # type: ignore[arg-type]
        row = rows[v.name] = ImpactRow(v.name, "ok", returns, float(np.mean(returns)), v.baseline)
        base = rows.get(v.baseline) if v.baseline else None
        if v.baseline and (base is None or base.status != "ok"):
            row.note = f"baseline {v.baseline} crashed: no comparison"
        elif base is not None and len(returns) >= 2:
            row.diff, row.ci_low, row.ci_high = bootstrap_diff_ci(returns, base.returns)
            row.verdict = verdict(row.ci_low, row.ci_high, min(len(returns), len(base.returns)))
            if returns == base.returns:
                # Same seed, same machine → same run: the fault changed nothing at all here.
                row.note = "every seed identical to the baseline: the fault's code path had no effect"
    return list(rows.values())


def format_impact(rows: Sequence[ImpactRow], header: str) -> str:
    def num(x: float | None) -> str:
        return "" if x is None else f"{x:.1f}"

    table = _table(
        [[r.id, "crashed" if r.status != "ok" else num(r.mean), r.baseline or "",
          num(r.diff), f"[{num(r.ci_low)}, {num(r.ci_high)}]" if r.ci_low is not None else "",
          r.verdict or ("crashed" if r.status != "ok" else ""), r.note]
         for r in rows],
        ["variant", "mean return", "baseline", "Δ vs baseline", "95% CI of Δ", "verdict", "note"],
    )
    return f"{header}\n{table}"


def plot_impact(rows: Sequence[ImpactRow], path: Path, title: str) -> None:
    """Bar chart of Δ vs baseline with CI whiskers; crashed faults labelled, not plotted."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display exists on CI machines
    import matplotlib.pyplot as plt

    faults = [r for r in rows if r.baseline is not None]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(faults) + 2), 4.5))
    xs = np.arange(len(faults))
    for x, r in zip(xs, faults):
        if r.diff is None:
            label = "crashed" if r.status != "ok" else "baseline crashed"
            ax.text(x, 0, label, rotation=90, ha="center", va="bottom", color="tab:red")
            continue
        color = {"hurts": "tab:red", "helps": "tab:green"}.get(r.verdict, "tab:gray")
        ax.bar(x, r.diff, color=color)
        ax.errorbar(x, r.diff, yerr=[[r.diff - r.ci_low], [r.ci_high - r.diff]],
                    color="black", capsize=3)
    ax.axhline(0, color="black", linewidth=0.8)
    labels = [r.id if r.baseline == "clean" else f"{r.id}\n(vs {r.baseline})" for r in faults]
    ax.set_xticks(xs, labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("final eval return: fault − clean")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)  # same atomicity as the JSON: never half a PNG


def impact(
    algo: str,
    seeds: int,
    steps: int,
    faults: str | Iterable[str] | None = None,
    out: Path | None = None,
    jobs: int = 1,
    env_id: str | None = None,
    sets: Sequence[str] = (),
    timeout: float = 3600.0,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr, flush=True),
) -> dict[str, Any]:
    """Train `algo` clean and with each applicable fault for seeds 0..seeds-1, write
    `impact.json` (updated after every run) and `impact.png` under `out`; return the result."""
    from rlbench.runs import atomic_write_json
    from rlbench.trainers import TRAINERS

    if algo not in TRAINERS:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(TRAINERS) or 'none yet'}")
    if seeds < 2:
        raise ValueError(f"seeds must be >= 2 for a confidence interval, got {seeds}")
    if steps < 1 or jobs < 1:
        raise ValueError(f"steps and jobs must be >= 1, got steps={steps} jobs={jobs}")
    if os.environ.get(ENV_VAR):
        raise ValueError(f"unset {ENV_VAR}: impact switches each fault on itself")
    variants = impact_variants(algo, faults)
    out = Path(out or f"runs/impact-{algo}")
    plan = [(ImpactRun(v.name, s, out_dir=str(out / "runs" / v.name / f"s{s}")), v)
            for v in variants for s in range(seeds)]
    runs = [r for r, _ in plan]
    meta = {"algo": algo, "env": env_id, "steps": steps, "seeds": list(range(seeds)),
            "sets": list(sets), "variants": [asdict(v) for v in variants]}
    lock = threading.Lock()  # runs finish on worker threads; one writer at a time

    def save(rows: list[ImpactRow] | None) -> None:
        with lock:
            atomic_write_json(out / "impact.json", {
                **meta, "complete": rows is not None,
                "rows": [asdict(r) for r in rows or []],
                "runs": [asdict(r) for r in runs if r.status != "pending"],
            })

    calls = [lambda r=r, v=v: _train_once(r, v, algo, steps, env_id, sets, timeout)
             for r, v in plan]
    with closing(_parallel(jobs, calls)) as finished:  # closing: cleanup even on Ctrl-C here
        for done, r in enumerate(finished, 1):
            value = f"{r.final_eval_return:.1f}" if r.status == "ok" else f"{r.status}: {r.error}"
            log(f"[impact] {done}/{len(runs)} {r.variant} seed {r.seed}: {value} "
                f"({r.seconds:.0f} s)")
            save(None)
    rows = summarise_impact(runs, variants)
    save(rows)
    env_used = env_id or next((r.env for r in runs if r.env), "its default env")
    title = (f"{algo} on {env_used}: final eval return, fault − clean baseline\n"
             f"{seeds} seeds × {steps} steps; bar: mean Δ, whiskers: 95% bootstrap CI")
    plot_impact(rows, out / "impact.png", title)
    return {**meta, "rows": rows, "title": title, "out": str(out)}


# --------------------------------------------------------------------------- CLI


def cmd_list(args: argparse.Namespace) -> int:
    if args.json:
        print(json.dumps([asdict(f) for f in CATALOGUE], indent=2))
    elif args.markdown:  # the README table is generated from the catalogue, never typed
        print("| id | source | the bug | the fix rlbench keeps |\n|---|---|---|---|")
        for f in CATALOGUE:
            print(f"| `{f.id}` | {_short_source(f)} | {f.bug} | {f.fix} |")
    else:
        print(_table([[f.id, _short_source(f), ",".join(f.algos), len(f.detectors),
                       f.bug if len(f.bug) <= 70 else f.bug[:69] + "…"]
                      for f in CATALOGUE],
                     ["id", "source", "algos", "detectors", "the bug"]))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    _terminate_as_interrupt()
    faults = [BY_ID[i] for i in parse_faults(args.only)] if args.only else list(CATALOGUE)
    faults.sort(key=CATALOGUE.index)

    def progress(name: str, run: PytestRun) -> None:
        if not args.json:
            state = "timeout" if run.timed_out else f"exit {run.returncode}"
            print(f"[verify] {name}: {state} in {run.seconds:.1f} s", file=sys.stderr, flush=True)

    rows, clean = kill_matrix(faults, jobs=args.jobs, timeout=args.timeout, on_result=progress)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(format_kill_matrix(rows, clean))
    return 0 if rows and all(r.ok for r in rows) else 1


def cmd_impact(args: argparse.Namespace) -> int:
    _terminate_as_interrupt()
    result = impact(args.algo, args.seeds, args.steps, args.faults, args.out, args.jobs,
                    args.env, args.set, args.timeout)
    print(format_impact(result["rows"], result["title"]))
    print(f"\nwrote {result['out']}/impact.json and {result['out']}/impact.png")
    # A crashing clean baseline voids its comparisons: that is a failed study.
    return 0 if all(r.status == "ok" for r in result["rows"] if r.baseline is None) else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `rlbench faults {list,verify,impact}` on the main CLI."""
    p = sub.add_parser("faults", help="the documented-fault catalogue, its kill matrix and impact")
    fsub = p.add_subparsers(dest="faults_command", required=True, metavar="ACTION")

    q = fsub.add_parser("list", help="the catalogue: id, source, algorithms, detector count")
    fmt = q.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="every field, machine-readable")
    fmt.add_argument("--markdown", action="store_true", help="the README table")
    q.set_defaults(func=cmd_list)

    q = fsub.add_parser(
        "verify",
        help="kill matrix: each fault's detectors must fail with it on and pass clean",
        description="Runs every fault's detector tests in a fresh pytest process with the "
        "fault on (≥1 must fail in its test body; import/collection errors and timeouts are "
        "not kills) and all detectors once clean (all must pass). Exit 1 if any fault "
        "survives, any clean run fails, or a fault has no detectors.",
    )
    q.add_argument("--json", action="store_true",
                   help='[{"id","killed","detectors","clean_passed","seconds",...}]')
    q.add_argument("--only", metavar="ID,...", help="only these faults")
    q.add_argument("--jobs", type=int, default=2, help="pytest processes at once (default 2)")
    q.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds per fault-on pytest process, {CLEAN_TIMEOUT_FACTOR}x for "
                   f"the clean run over all detectors; a timeout is not a kill "
                   f"(default {DEFAULT_TIMEOUT_S:.0f})")
    q.set_defaults(func=cmd_verify)

    q = fsub.add_parser(
        "impact",
        help="final eval return with each applicable fault vs clean, over seeds",
        description="Trains ALGO clean and with each fault whose code path it has, for "
        "seeds 0..SEEDS-1, and reports fault − clean final eval return with a bootstrap 95%% "
        "CI (table, OUT/impact.json, OUT/impact.png). Faults whose catalogue row has a setup "
        "(e.g. actors=2) are compared with a clean baseline run in that same setup. A fault "
        "that kills or hangs training is reported as crashed.",
    )
    q.add_argument("--algo", required=True, help="trainer to measure (see `rlbench train -h`)")
    q.add_argument("--seeds", type=int, default=5, help="seeds per variant (default 5)")
    q.add_argument("--steps", type=int, required=True, help="env steps per run")
    q.add_argument("--faults", metavar="ID,...", help="only these faults (default: all that apply)")
    q.add_argument("--env", help="env id (default: the algorithm's config default)")
    q.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="config override passed to every run (repeatable)")
    q.add_argument("--out", type=Path, help="results folder (default runs/impact-<algo>)")
    q.add_argument("--jobs", type=int, default=1, help="training runs at once (default 1)")
    q.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds per run before it counts as hung (default 3600)")
    q.set_defaults(func=cmd_impact)
