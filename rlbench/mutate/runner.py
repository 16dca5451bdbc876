"""Parallel, isolated execution of mutants.

Each worker owns a private copy of the project in a temporary folder and runs pytest
there with ``PYTHONPATH`` pointing at the copy, so the editable install (and the shared
working tree) is never what the tests import, and a mutant is written only into its
worker's copy (and restored afterwards). Workers run the selected tests through a
pre-warmed fork server (see `forkserver`), or a plain ``python -m pytest`` per mutant
with ``fork=False``. Every temporary folder and process group is removed on every exit
path, Ctrl-C included.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from rlbench import processes
from rlbench.buffers.shared import sweep_orphan_segments
from rlbench.mutate.generate import Mutant
from rlbench.mutate.pytest_plugin import CONTEXT_ENV, TESTS_ENV, TIMEOUT_LINE

# Imported once per worker by the fork server (whichever are installed): the bulk of a
# test process's start-up. Never anything that imports rlbench.
PRELOAD = ("numpy", "scipy", "scipy.stats", "torch", "torch.nn", "jax", "jax.numpy", "flax",
           "flax.nnx", "optax", "gymnasium", "pytest", "hypothesis", "_pytest.python",
           "matplotlib")
# Never copied when the project is not a git checkout (caches, environments, outputs).
SKIP_DIRS = {".git", ".venv", "venv", "__pycache__", ".hypothesis", ".pytest_cache", ".tox",
             ".asv", ".ruff_cache", ".mypy_cache", "node_modules", "build", "dist", "runs"}
FORKSERVER = Path(__file__).with_name("forkserver.py")
# (mutant, covering tests) -> (tests to run in that order, the run's timeout in seconds,
# each test's own time limit in seconds)
Plan = Callable[[Mutant, list[str]], tuple[list[str], float, dict[str, float]]]


@dataclass
class Outcome:
    """What running one mutant's tests gave."""

    status: str  # killed | survived | timeout | error
    seconds: float
    tests_run: int
    detail: str = ""


def project_files(root: Path) -> list[str]:
    """Files a test run may read: tracked and untracked-but-not-ignored files (git), or
    every file outside caches and environments when `root` is not a git checkout."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=root, capture_output=True, check=True)
        files = [f for f in out.stdout.decode().split("\0") if f]
        return [f for f in files if (root / f).is_file()]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.endswith(
                ".egg-info") and not (Path(dirpath) / d / "pyvenv.cfg").exists()]
            rel = Path(dirpath).relative_to(root)
            files += [(rel / f).as_posix() for f in filenames]
        return files


def make_workspace(root: Path, files: Iterable[str], parent: Path, name: str) -> Path:
    """A private copy of `files` of `root` under `parent`."""
    dest = parent / name
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)
    return dest


def workspace_env(workdir: Path) -> dict[str, str]:
    """The environment of every test process in a workspace: this one's, minus what a
    run of `rlbench mutate` that is itself under test (a coverage pass over rlbench's own
    mutate tests) would otherwise pass down: the outer test's coverage context and
    per-test record file."""
    inherited = {k: v for k, v in os.environ.items()
                 if k not in (CONTEXT_ENV, TESTS_ENV)}
    return {
        **inherited,
        "PYTHONPATH": str(workdir),
        # No bytecode: a restored file of the same size as its mutant, written in the same
        # second, would otherwise load the mutant's stale .pyc.
        "PYTHONDONTWRITEBYTECODE": "1",
        # One persistent XLA compilation cache for all workers of the run: most mutants
        # leave the jitted programs as they were, and compiling them is most of a SAC
        # test's time (measured: a cache hit halves it). The key is the compiled program
        # itself, so a mutant that changes jitted code simply misses.
        "JAX_COMPILATION_CACHE_DIR": str(workdir.parent / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def imported_from(workdir: Path, package: str = "rlbench") -> str:
    """Where `import <package>` resolves inside a workspace (the isolation check)."""
    code = f"import {package}; print({package}.__file__)"
    out = subprocess.run([sys.executable, "-c", code],
                         cwd=workdir, env=workspace_env(workdir), capture_output=True,
                         text=True, check=True)
    return out.stdout.strip()


class Worker:
    """One workspace and, with `fork`, its fork server."""

    def __init__(self, workdir: Path, fork: bool, logdir: Path,
                 preload: tuple[str, ...] = PRELOAD) -> None:
        self.workdir, self.fork, self.logdir, self.preload = workdir, fork, logdir, preload
        self.server: subprocess.Popen | None = None
        self.current: subprocess.Popen | None = None

    def _start_server(self) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, str(FORKSERVER), *self.preload], cwd=self.workdir,
            env=workspace_env(self.workdir), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        ready = proc.stdout.readline()
        if not ready:
            raise RuntimeError("mutation fork server did not start")
        return proc

    def run_tests(self, tests: list[str], timeout: float, log: Path,
                  deadlines: dict[str, float] | None = None) -> tuple[int | None, bool]:
        """pytest on `tests` in this workspace: (exit code or None, timed out). `deadlines`
        (node id -> seconds) limits each test on its own (see `pytest_plugin`). Shared-memory
        segments the killed session could not free are swept afterwards."""
        args = ["-x", "-q", "-p", "no:cacheprovider", "--no-header"]
        if deadlines:
            path = log.with_suffix(".deadlines.json")
            path.write_text(json.dumps({t: round(s, 1) for t, s in deadlines.items()}))
            args += ["-p", "rlbench.mutate.pytest_plugin", "--mutate-deadlines", str(path)]
        try:
            return self._run_tests([*args, *tests], timeout, log)
        finally:
            sweep_orphan_segments()

    def _run_tests(self, args: list[str], timeout: float, log: Path) -> tuple[int | None, bool]:
        if self.fork:
            if self.server is None or self.server.poll() is not None:
                self.server = self._start_server()
            self.server.stdin.write(json.dumps({"args": args, "timeout": timeout,
                                                "log": str(log)}) + "\n")
            self.server.stdin.flush()
            reply = self.server.stdout.readline()
            if not reply:
                self.server = None
                return 3, False
            answer = json.loads(reply)
            return answer["rc"], answer["timeout"]
        with open(log, "w") as out:
            self.current = subprocess.Popen(
                [sys.executable, "-m", "pytest", *args], cwd=self.workdir,
                env=workspace_env(self.workdir), stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                return self.current.wait(timeout=timeout), False
            except subprocess.TimeoutExpired:
                return None, True
            finally:  # timed out or not: nothing the run spawned outlives it
                kill_group(self.current)
                self.current = None

    def close(self) -> None:
        for proc in (self.current, self.server):
            if proc is not None and proc.poll() is None:
                try:
                    proc.terminate()  # the server kills its running child's group first
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    kill_group(proc)
        self.server = None


def kill_group(proc: subprocess.Popen) -> None:
    """Kill `proc`'s process group (it runs in its own session) and reap it."""
    processes.kill_group(proc.pid)
    proc.wait()


def classify(rc: int | None, timed_out: bool, log: str = "") -> str:
    """pytest's exit code -> mutant status. 1 (tests failed), 2 (interrupted: usually an
    import error the mutant caused), 3 (internal error) and death by a signal all mean a
    test run noticed the mutant; a test failed by its pytest-timeout limit is a timeout. 4
    is a kill when a test module failed to import (pytest then "found no collectors" for
    the node ids); otherwise 4/5 (usage error, nothing collected) are our errors, not
    kills."""
    if timed_out or (rc == 1 and TIMEOUT_LINE.search(log)):
        return "timeout"
    if rc == 0:
        return "survived"
    if rc in (1, 2, 3) or (rc is not None and rc < 0):
        return "killed"
    if rc == 4 and any(line.startswith("ERROR ") and ".py" in line for line in log.splitlines()):
        return "killed"
    return "error"


class WorkerPool:
    """`n` workspaces of `root` in one temporary folder; a context manager that removes
    everything it made on exit (normal, exception, Ctrl-C)."""

    def __init__(self, root: Path, n: int, fork: bool = True,
                 preload: tuple[str, ...] = PRELOAD) -> None:
        self.root, self.n, self.fork, self.preload = root, max(1, n), fork, preload
        self.tmp = Path(tempfile.mkdtemp(prefix="rlbench-mutate-"))
        self.workers: list[Worker] = []
        self._free: queue.Queue[Worker] = queue.Queue()
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def __enter__(self) -> WorkerPool:
        try:
            files = project_files(self.root)
            for i in range(self.n):
                wd = make_workspace(self.root, files, self.tmp, f"w{i}")
                (self.tmp / f"logs{i}").mkdir()
                w = Worker(wd, self.fork, self.tmp / f"logs{i}", self.preload)
                self.workers.append(w)
                self._free.put(w)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def workdirs(self) -> list[Path]:
        return [w.workdir for w in self.workers]

    def close(self) -> None:
        self._stop.set()
        for w in self.workers:
            w.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def run_one(self, mutant: Mutant, tests: list[str], timeout: float,
                plan: Plan | None = None) -> Outcome:
        """Write `mutant` into a free workspace, run `tests`, restore the file. `plan`, when
        given, picks the tests to run (and their timeout) now, so that it can learn from
        the results that came in while this mutant waited."""
        if self._stop.is_set():
            return Outcome("error", 0.0, 0, "interrupted")
        deadlines = None
        if plan is not None:
            tests, timeout, deadlines = plan(mutant, tests)
        worker = self._free.get()
        path = worker.workdir / mutant.file
        original = path.read_bytes()
        start = time.perf_counter()
        try:
            path.write_text(mutant.source)
            log = worker.logdir / f"{mutant.uid}.log"
            rc, timed_out = worker.run_tests(tests, timeout, log, deadlines)
            text = log.read_text(errors="replace") if log.exists() else ""
            status = classify(rc, timed_out, text)
            # A kill or a test's own time limit names the test; a survivor has nothing to say.
            detail = "" if status == "survived" or timed_out else _first_failure(text)
            return Outcome(status, time.perf_counter() - start, len(tests), detail)
        finally:
            path.write_bytes(original)
            self._free.put(worker)

    def run_all(
        self, jobs: list[tuple[Mutant, list[str], float]],
        on_result: Callable[[Mutant, Outcome], None], plan: Plan | None = None,
    ) -> None:
        """Run every (mutant, tests, timeout) job on the pool's workers."""
        with ThreadPoolExecutor(max_workers=self.n) as pool:
            futures = {pool.submit(self.run_one, m, t, s, plan): m for m, t, s in jobs}
            try:
                for fut in as_completed(futures):
                    on_result(futures[fut], fut.result())
            except BaseException:
                self._stop.set()
                for f in futures:
                    f.cancel()
                for w in self.workers:  # unblocks threads waiting on a test run
                    w.close()
                raise


def _first_failure(log: str) -> str:
    """The first FAILED/ERROR line of a pytest log (why the mutant was killed)."""
    for line in log.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line[:300]
    lines = [ln for ln in log.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""
