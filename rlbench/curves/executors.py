"""Executors: run suite jobs in parallel and hand back one `JobRecord` per job.

* `LocalExecutor` (default, nothing to set up): at most N jobs at a time, each in a fresh
  spawned process in its own process group. A fresh process per job isolates crashes (a
  segfaulting trainer cannot take a shared pool down with it), starts every job from the
  same state (determinism), and lets a timed-out or interrupted job be killed together
  with any actor processes it started.
* `RayExecutor` (`pip install rlbench[dist]`): each job is one Ray task, on a local Ray
  instance or an existing cluster (`address="auto"`). Ray is imported only here, lazily.

Both call the same `run_job`, so for the same seeds they produce the same curves.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import multiprocessing.connection
import os
import resource
import signal
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from rlbench.curves.records import ERROR, Job, JobRecord, machine, now
from rlbench.processes import SINGLE_THREAD_ENV, gpu_job_env, kill_group, visible_gpus

OnResult = Callable[[JobRecord], None]


class Executor(Protocol):
    def run(self, jobs: Sequence[Job], run_root: Path, on_result: OnResult) -> None:
        """Run `jobs`, calling `on_result` (in the calling thread) as each one ends.
        KeyboardInterrupt stops every running job and propagates."""


def run_job(job: Job, run_dir: str | None) -> dict[str, Any]:
    """Train one job through `rlbench.trainers.train`; its record as a dict (never raises:
    a failing trainer becomes an "error" record with the traceback's tail)."""
    for key, value in SINGLE_THREAD_ENV.items():
        os.environ.setdefault(key, value)
    if run_dir is not None:
        # JAX compiles the same SAC programs in every job: a persistent compilation cache
        # shared by the suite's jobs compiles each of them once (same executables, same
        # results).
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(run_dir).parent / ".jax-cache"))
    cpu_start = _cpu_seconds()
    try:
        from rlbench.trainers import train

        try:  # torch keeps its own pool size even when imported after OMP_NUM_THREADS
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
        summary = train(job.algo, out_dir=run_dir, progress=False, **job.config_changes())
        record = JobRecord.from_summary(job, summary).to_dict()
    except Exception as exc:  # noqa: BLE001 — any trainer failure is this job's "error"
        tail = "".join(traceback.format_exception(exc)[-3:]).strip()
        record = JobRecord(job, ERROR, error=f"{type(exc).__name__}: {exc}\n{tail}").to_dict()
    # CPU time does not depend on how busy a shared machine is; wall time does. Machine and
    # finish time are taken where the job ran (a Ray worker's host, not the driver's).
    return record | {"cpu_seconds": _cpu_seconds() - cpu_start, "machine": machine(),
                     "finished": now()}


def _cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (actor processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _child(job: Job, run_dir: str, result_path: str) -> None:
    os.setpgrp()  # own process group: the parent can kill this job and its actor processes
    from rlbench.runs import atomic_write_json

    atomic_write_json(result_path, run_job(job, run_dir))


@contextlib.contextmanager
def _environ(defaults: dict[str, str]) -> Iterator[None]:
    """Temporarily set the variables of `defaults` that are not set already."""
    added = {k: v for k, v in defaults.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _stop_job(proc: mp.process.BaseProcess, grace_s: float = 5.0) -> None:
    """Stop a job with everything it started: SIGTERM to its process group first (trainers
    clean up their shared memory, and multiprocessing's resource tracker, which ignores
    SIGTERM, unlinks what is left once the job exits), SIGKILL if it is still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        # No group: the job has not called setpgrp yet (or is gone already).
        if not kill_group(proc.pid, sig) and proc.exitcode is None:
            os.kill(proc.pid, sig)
        proc.join(grace_s)
        if proc.exitcode is not None:
            break


class LocalExecutor:
    """Up to `jobs` jobs at a time, each in a fresh spawned process (see module docstring)."""

    def __init__(self, jobs: int = 1, poll_s: float = 0.5) -> None:
        if jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {jobs}")
        self.jobs, self.poll_s = jobs, poll_s

    def run(self, jobs: Sequence[Job], run_root: Path, on_result: OnResult) -> None:
        ctx = mp.get_context("spawn")  # fork would copy the parent's threads and locks
        pending = deque(jobs)
        running: dict[int, tuple[mp.process.BaseProcess, Job, float, Path, int]] = {}
        gpus = visible_gpus()
        free_slots = list(range(self.jobs))  # slot → which GPU (or share of one) a job gets
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    job = pending.popleft()
                    run_dir = Path(run_root) / job.id
                    result = run_dir / "record.json"
                    result.unlink(missing_ok=True)
                    proc = ctx.Process(target=_child, args=(job, str(run_dir), str(result)),
                                       name=f"rlbench-job-{job.id}")
                    slot = free_slots.pop()
                    # The child inherits these before any import (threads, its GPU share).
                    with _environ(SINGLE_THREAD_ENV | gpu_job_env(slot, self.jobs, gpus)):
                        proc.start()
                    running[proc.pid] = (proc, job, time.monotonic(), result, slot)
                multiprocessing.connection.wait([p.sentinel for p, *_ in running.values()],
                                                timeout=self.poll_s)
                for pid, (proc, job, start, result, slot) in list(running.items()):
                    elapsed = time.monotonic() - start
                    if proc.exitcode is None and elapsed <= job.timeout_s:
                        continue
                    del running[pid]
                    free_slots.append(slot)
                    if proc.exitcode is None:
                        _stop_job(proc)
                        on_result(JobRecord(job, ERROR, wall_seconds=elapsed,
                                            error=f"timed out after {job.timeout_s:.0f} s",
                                            machine=machine(), finished=now()))
                    elif result.is_file():
                        proc.join()
                        on_result(JobRecord.from_dict(_read_json(result)))
                    else:
                        on_result(JobRecord(job, ERROR, wall_seconds=elapsed,
                                            error=f"job process died with exit code {proc.exitcode}"
                                                  " before writing a result",
                                            machine=machine(), finished=now()))
        finally:  # interrupt or error in on_result: no job outlives the executor
            for proc, *_ in running.values():
                _stop_job(proc)


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


class RayExecutor:
    """Each job one Ray task (`num_cpus=1`, no retries: a crash is reported, not hidden).

    `address=None` starts a private local Ray instance with `jobs` CPUs; `"auto"` or
    `"ray://host:port"` joins an existing cluster. Run folders are written on whichever
    node runs the task; the record travels back to the caller.
    """

    def __init__(self, jobs: int = 1, address: str | None = None, poll_s: float = 1.0) -> None:
        if jobs < 1:
            raise ValueError(f"--jobs must be >= 1, got {jobs}")
        self.jobs, self.address, self.poll_s = jobs, address, poll_s

    def run(self, jobs: Sequence[Job], run_root: Path, on_result: OnResult) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError(
                "--executor ray needs Ray: pip install 'rlbench[dist]' -c constraints.txt"
            ) from None
        started_here = not ray.is_initialized()
        # ray.init installs its own SIGTERM/SIGINT handlers in this process and shutdown
        # leaves them there; restore ours so Ctrl-C/SIGTERM handling outlives the run.
        handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        if started_here:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "runtime_env": {"env_vars": SINGLE_THREAD_ENV}}
            if self.address is None:
                kwargs["num_cpus"] = self.jobs
            try:
                ray.init(address=self.address, **kwargs)
            except ConnectionError as exc:  # --address given but no cluster answers there
                raise ValueError(f"cannot reach a Ray cluster at --address {self.address}: {exc}") from None
        task = ray.remote(num_cpus=1, max_retries=0)(run_job)
        submitted = time.monotonic()
        # Ray does not say when a queued task starts; job i starts at the latest after
        # i // jobs earlier waves each ran to their timeout, so its deadline counts those.
        refs = {task.remote(job, str(Path(run_root) / job.id)):
                (job, submitted + job.timeout_s * (i // self.jobs + 1)) for i, job in enumerate(jobs)}
        try:
            while refs:
                done, _ = ray.wait(list(refs), num_returns=1, timeout=self.poll_s)
                for ref in done:
                    job, _ = refs.pop(ref)
                    try:
                        on_result(JobRecord.from_dict(ray.get(ref)))
                    except ray.exceptions.RayError as exc:  # worker died, task cancelled
                        on_result(JobRecord(job, ERROR,
                                            error=f"ray task failed: {type(exc).__name__}: {exc}"))
                for ref, (job, deadline) in list(refs.items()):
                    if time.monotonic() > deadline:
                        ray.cancel(ref, force=True)
                        del refs[ref]
                        on_result(JobRecord(job, ERROR, error=f"timed out after {job.timeout_s:.0f} s"))
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


def make_executor(kind: str, jobs: int = 1, address: str | None = None) -> Executor:
    if kind == "local":
        if address is not None:
            raise ValueError("--address only applies to --executor ray")
        return LocalExecutor(jobs)
    if kind == "ray":
        return RayExecutor(jobs, address)
    raise ValueError(f"unknown executor {kind!r}; known: local, ray")
