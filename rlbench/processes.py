"""Child processes of the commands: process groups, parallel waiting, signals, thread limits.

One home for what `rlbench faults verify/impact` and the curves executors share: every child
that may spawn children of its own (a pytest run, a trainer with actor processes) runs in
its own process group, so one `killpg` takes the whole tree down on timeout or interrupt.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed, wait
from contextlib import contextmanager
from typing import Any

SINGLE_THREAD_ENV: dict[str, str] = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    # Eigen's pool is XLA's CPU intra-op parallelism; the bare second token is the widely
    # copied TF spelling, which XLA's flag parser ignores (kept so recorded job environments
    # do not change).
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "MUJOCO_GL": "disable",
}
"""Environment for a child that runs next to others: one intra-op thread per library.
Jobs already run in parallel, and BLAS/XLA pools fighting over a few cores make every run
slower and timings noisy. Must be in the environment before torch/jax are imported."""


def visible_gpus() -> list[str]:
    """The GPU ids jobs may be spread over: CUDA_VISIBLE_DEVICES when set, else the GPUs
    `nvidia-smi -L` lists; [] on a machine without GPUs (asks no framework: the parent of a
    suite should not import torch or JAX, or claim GPU memory, just to count devices)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, _ in enumerate(x for x in out.splitlines() if x.startswith("GPU "))]


def gpu_job_env(slot: int, jobs: int, gpus: Sequence[str]) -> dict[str, str]:
    """Environment for parallel job `slot` of `jobs`: its own GPU while there are enough,
    otherwise GPUs shared round-robin with JAX's memory pool split between the sharers
    (by default JAX preallocates 75% of a GPU per process, so a second job would fail)."""
    if not gpus:
        return {}
    env = {"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]}
    sharers = math.ceil(jobs / len(gpus))
    if sharers > 1:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 / sharers:.2f}"
    return env


def kill_group(pid: int, sig: int = signal.SIGKILL) -> bool:
    """Send `sig` to the process group led by `pid` (a child started in its own session or
    after `os.setpgrp`): the child and everything it spawned. False when there is no such
    group (not created yet, or already gone)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


_live: set[subprocess.Popen] = set()
_live_lock = threading.Lock()


def run_group(cmd: list[str], timeout: float, **popen: Any) -> tuple[int | None, str, str]:
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
        kill_group(proc.pid)
        out, err = proc.communicate()
        return None, out, err or ""
    finally:
        with _live_lock:
            _live.discard(proc)


def parallel(jobs: int, calls: list[Callable[[], Any]]) -> Iterator[Any]:
    """Run `calls` on `jobs` threads (they only wait on child processes), yielding results
    as they complete. If the caller stops early (Ctrl-C, SIGTERM, an error), queued calls
    are cancelled and running `run_group` children are killed: their own sessions would
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
                    kill_group(proc.pid)
        pool.shutdown(wait=True)


@contextmanager
def sigterm_raises(error: Callable[[int], BaseException] = lambda signum: KeyboardInterrupt()
                   ) -> Iterator[None]:
    """Inside the block SIGTERM raises `error(signum)` in the main thread, so the clean-up a
    Ctrl-C runs (kill children, free shared memory, mark a report incomplete) runs for a
    CI cancel too. Outside the main thread signals cannot be set: the block runs unchanged
    (and a block left from another thread, e.g. by a finalizer, restores nothing)."""

    def handler(signum: int, frame: Any) -> None:
        raise error(signum)

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        previous = False
    if previous is False:  # (outside the except: the body's errors get no spurious context)
        yield
        return
    try:
        yield
    finally:
        # None: the previous handler was not installed from Python; SIG_DFL is the default.
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def sigterm_as_interrupt() -> contextlib.AbstractContextManager[None]:
    """SIGTERM raises KeyboardInterrupt inside the block (`sigterm_raises`)."""
    return sigterm_raises()
