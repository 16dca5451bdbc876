"""Coverage-guided test selection: which tests execute which lines.

The fast suite runs once under coverage.py with one dynamic context per test (see
`pytest_plugin`), split over the workers' copies by test file. A mutant then runs only
against the tests that executed a line of its statement, fastest first, so most killed
mutants are killed by the first few seconds of one test, and a mutant no test executes
costs nothing (it is reported "not covered").
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rlbench.mutate.generate import Mutant
from rlbench.mutate.pytest_plugin import CONTEXT_ENV, TESTS_ENV
from rlbench.mutate.runner import kill_group, workspace_env


@dataclass
class TestMap:
    """Per file (relative posix path) and line, the node ids of the tests that ran it,
    plus each test's baseline duration, the tests that failed on clean code, and the
    shared (class/module/package-scoped) fixtures each test uses."""

    lines: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    failing: set[str] = field(default_factory=set)
    shared: dict[str, list[str]] = field(default_factory=dict)  # test -> fixture keys
    _memo: tuple[int, dict[str, set[str]]] | None = field(
        default=None, init=False, repr=False, compare=False)

    def _groups(self) -> dict[str, set[str]]:
        """fixture key -> the tests using it (rebuilt when `shared` grows)."""
        if self._memo is None or self._memo[0] != len(self.shared):
            groups: dict[str, set[str]] = defaultdict(set)
            for test, keys in self.shared.items():
                for key in keys:
                    groups[key].add(test)
            self._memo = (len(self.shared), groups)
        return self._memo[1]

    def _builder(self, key: str) -> str:
        """The test that builds shared fixture `key` in the coverage pass: coverage credits
        the build to it, so it is the slowest of the fixture's tests."""
        return max(self._groups()[key], key=lambda t: self.seconds.get(t, 0.0))

    def tests_for(self, mutant: Mutant) -> list[str]:
        """Tests executing any line of the mutant's statement, fastest first, and every
        test sharing a class/module/package-scoped fixture with one of them (coverage
        credits a shared fixture's work to the first test that built it; the others check
        it); tests that fail on clean code are left out (they would "kill" every mutant)."""
        by_line = self.lines.get(mutant.file, {})
        found: set[str] = set()
        for line in range(mutant.span[0], mutant.span[1] + 1):
            found |= by_line.get(line, set())
        groups = self._groups()
        for test in list(found):
            for key in self.shared.get(test, ()):
                found |= groups[key]
        found -= self.failing
        return sorted(found, key=lambda t: (self.seconds.get(t, 0.0), t))

    def cost(self, tests: list[str]) -> float:
        """Baseline seconds of running `tests` alone: their own times, plus, per shared
        fixture group whose builder (its slowest test) is not among them, that builder's
        time, since whichever test of the group runs first builds the fixture again."""
        total = sum(self.seconds.get(t, 1.0) for t in tests)
        chosen = set(tests)
        for key in {k for t in tests for k in self.shared.get(t, ())}:
            builder = self._builder(key)
            if builder not in chosen:
                total += self.seconds.get(builder, 1.0)
                chosen.add(builder)  # one rebuild per group
        return total

    def deadlines(self, tests: list[str], factor: float, slack: float) -> dict[str, float]:
        """Seconds each of `tests`, run in this order, may take before the run counts as
        hung: `factor` x its baseline, plus the rebuild of each shared fixture it is the
        first of `tests` to need (it builds it), plus `slack`."""
        out: dict[str, float] = {}
        built: set[str] = set()
        for t in tests:
            # pytest tears a shared fixture down when it leaves the fixture's owner (module,
            # class, package): a later test of that owner, run after another file's, builds
            # it again.
            built = {key for key in built if _within(t, key.rpartition("::")[0])}
            seconds = self.seconds.get(t, 1.0)
            for key in self.shared.get(t, ()):
                if key not in built:
                    built.add(key)
                    builder = self._builder(key)
                    seconds += self.seconds.get(builder, 1.0) if builder != t else 0.0
            out[t] = factor * seconds + slack
        return out

    def to_dict(self) -> dict:
        return {"lines": {f: {str(k): sorted(v) for k, v in d.items()}
                          for f, d in self.lines.items()},
                "seconds": self.seconds, "failing": sorted(self.failing),
                "shared": self.shared}

    @classmethod
    def from_dict(cls, d: dict) -> TestMap:
        return cls({f: {int(k): set(v) for k, v in m.items()} for f, m in d["lines"].items()},
                   d["seconds"], set(d["failing"]), d.get("shared", {}))


def _within(nodeid: str, owner: str) -> bool:
    """Whether test `nodeid` lies inside the node `owner` (a module, class or package id)."""
    return nodeid.startswith(owner + "::") or nodeid.startswith(owner.rstrip("/") + "/")


def split_test_files(test_files: list[str], n: int, root: Path) -> list[list[str]]:
    """`n` groups of test files of about equal size (bytes stand in for run time)."""
    groups: list[list[str]] = [[] for _ in range(max(1, n))]
    sizes = [0] * len(groups)
    for f in sorted(test_files, key=lambda f: -(root / f).stat().st_size):
        i = sizes.index(min(sizes))
        groups[i].append(f)
        sizes[i] += (root / f).stat().st_size
    return [g for g in groups if g]


def coverage_command(workdir: Path, data_file: Path, tests_json: Path, pytest_args: list[str],
                     sources: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one coverage pass in `workdir`, measuring the
    top-level folders `sources` (e.g. ["rlbench"])."""
    rc = data_file.with_suffix(".rc")
    source = ",".join(str(workdir / s) for s in sources)
    # Child processes are measured too (the actor/learner's actors and learner run only
    # there): `multiprocessing` concurrency starts coverage in every spawned child, which
    # reads this file, so its static context is the test that spawned it (the plugin
    # exports the node id before each test; a child inherits the environment). `sigterm`
    # saves a child's data when its group stops it with SIGTERM.
    rc.write_text(f"[run]\ndata_file = {data_file}\nsource = {source}\n"
                  "omit = */rlbench/mutate/*\n"
                  "concurrency = thread,multiprocessing\n"
                  f"context = ${{{CONTEXT_ENV}-}}\n"
                  "sigterm = true\n")
    env = {**workspace_env(workdir), TESTS_ENV: str(tests_json)}
    cmd = [sys.executable, "-m", "coverage", "run", f"--rcfile={rc}", "-m", "pytest",
           "-p", "rlbench.mutate.pytest_plugin", "-p", "no:cacheprovider", "-q",
           "--no-header", *pytest_args]
    return cmd, env


def read_coverage(data_file: Path, workdir: Path, into: TestMap) -> None:
    """Add one pass's per-test line data (paths inside `workdir`) to `into`: the pytest
    process's file and every child's (`data_file.<host>.<pid>.<random>`)."""
    from coverage import CoverageData

    for path in sorted(data_file.parent.glob(data_file.name + "*")):
        data = CoverageData(basename=str(path))
        data.read()
        for measured in data.measured_files():
            try:
                rel = Path(measured).resolve().relative_to(workdir.resolve()).as_posix()
            except ValueError:
                continue
            per_line = into.lines.setdefault(rel, defaultdict(set))
            for line, contexts in data.contexts_by_lineno(measured).items():
                per_line[line].update(c for c in contexts if c)


def read_tests(tests_json: Path, into: TestMap) -> None:
    if not tests_json.exists():
        return
    for nodeid, entry in json.loads(tests_json.read_text()).items():
        into.seconds[nodeid] = float(entry.get("seconds", 0.0))
        if entry.get("shared"):
            into.shared[nodeid] = list(entry["shared"])
        if entry.get("outcome") == "failed":
            into.failing.add(nodeid)


def run_coverage_pass(
    workdirs: list[Path], test_files: list[str], pytest_args: list[str], scratch: Path,
    sources: list[str], chunks_per_worker: int = 3,
) -> TestMap:
    """Run the selected tests under coverage in parallel, one pytest process per chunk of
    test files, chunks handed out to the workspaces as they free up (file sizes are a poor
    guess of run time: a small file of JIT-compiling tests can take minutes), and return
    the merged `TestMap`. A test file that fails to import loses only its own tests."""
    chunks = split_test_files(test_files, len(workdirs) * chunks_per_worker, workdirs[0])
    free: queue.Queue[Path] = queue.Queue()
    for wd in workdirs:
        free.put(wd)
    lock = threading.Lock()
    procs: set[subprocess.Popen] = set()
    stop = threading.Event()
    test_map = TestMap()

    def run_chunk(i: int, chunk: list[str]) -> None:
        workdir = free.get()
        try:
            if stop.is_set():
                return
            data_file = scratch / f"coverage-{i}.data"
            tests_json = scratch / f"tests-{i}.json"
            cmd, env = coverage_command(
                workdir, data_file, tests_json,
                ["--continue-on-collection-errors", *pytest_args, *chunk], sources)
            log = scratch / f"coverage-{i}.log"
            with open(log, "w") as out:
                proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
                with lock:
                    procs.add(proc)
                rc = proc.wait()
                with lock:
                    procs.discard(proc)
            if rc >= 3 and rc != 5:  # internal or usage error; 5: nothing selected
                raise RuntimeError(f"coverage pass failed (pytest exit {rc}):\n"
                                   f"{log.read_text()[-2000:]}")
            with lock:
                read_coverage(data_file, workdir, test_map)
                read_tests(tests_json, test_map)
        finally:
            free.put(workdir)

    with ThreadPoolExecutor(max_workers=len(workdirs)) as pool:
        futures = [pool.submit(run_chunk, i, c) for i, c in enumerate(chunks)]
        try:
            for fut in futures:
                fut.result()
        except BaseException:
            stop.set()
            with lock:
                for proc in list(procs):
                    kill_group(proc)
            raise
    return test_map
