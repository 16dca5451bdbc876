"""Executors and the job runner on real (tiny) DQN jobs: Ray gives the local executor's
results for the same seeds, crashes and timeouts become "error" records, an interrupted
run reports unfinished jobs as "incomplete", and --resume runs only what is missing."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from rlbench.curves.executors import LocalExecutor, RayExecutor, make_executor
from rlbench.curves.nightly import run_jobs
from rlbench.curves.profiles import Entry
from rlbench.curves.records import ERROR, INCOMPLETE, OK, Job, JobRecord

# ~2-4 s per job, most of it process start-up and importing torch.
TINY = Entry("dqn", "CartPole-v1", (("total_steps", 600), ("eval_interval", 300),
                                    ("eval_episodes", 2), ("learning_starts", 200)),
             timeout_s=300)


def _collect(executor, jobs: list[Job], root: Path) -> dict[int, JobRecord]:
    out: dict[int, JobRecord] = {}
    executor.run(jobs, root, lambda r: out.__setitem__(r.job.seed, r))
    return out


def test_executor_ray_matches_local_for_the_same_seeds(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    jobs = [TINY.job(s) for s in (0, 1)]
    local = _collect(LocalExecutor(jobs=2), jobs, tmp_path / "local")
    ray_records = _collect(RayExecutor(jobs=2), jobs, tmp_path / "ray")
    assert {r.status for r in local.values()} == {OK}, [r.error for r in local.values()]
    for seed in (0, 1):
        assert ray_records[seed].status == OK, ray_records[seed].error
        assert ray_records[seed].steps == local[seed].steps
        assert ray_records[seed].returns == local[seed].returns  # bit-identical curves
    assert (tmp_path / "local" / jobs[0].id / "summary.json").is_file()


def test_executor_crash_is_an_error_record(tmp_path: Path) -> None:
    bad = Job("nope/CartPole-v1", "nope", 0, (("env_id", "CartPole-v1"),))
    (record,) = _collect(LocalExecutor(), [bad], tmp_path).values()
    assert record.status == ERROR and "unknown trainer" in record.error


def test_executor_timeout_kills_the_job(tmp_path: Path) -> None:
    slow = Entry("dqn", "CartPole-v1", (("total_steps", 10_000_000),), timeout_s=3).job(0)
    (record,) = _collect(LocalExecutor(poll_s=0.2), [slow], tmp_path).values()
    assert record.status == ERROR and "timed out" in record.error


def test_executor_unknown_kind_rejected() -> None:
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("slurm")
    with pytest.raises(ValueError, match="--address"):
        make_executor("local", address="auto")


def test_run_jobs_resume_runs_only_missing_jobs(tmp_path: Path) -> None:
    jobs = [TINY.job(s) for s in (0, 1)]
    records, interrupted, reused = run_jobs(jobs, tmp_path, LocalExecutor(2), False, "t", False)
    assert not interrupted and reused == 0 and {r.status for r in records.values()} == {OK}
    # Seed 1's job "crashed" last time: resume keeps seed 0's result and re-runs seed 1.
    crashed = JobRecord(jobs[1], ERROR, error="crashed")
    (tmp_path / "jobs" / f"{jobs[1].id}.json").write_text(json.dumps(crashed.to_dict()))
    kept = (tmp_path / "jobs" / f"{jobs[0].id}.json").read_text()
    again, _, reused = run_jobs(jobs, tmp_path, LocalExecutor(2), True, "t", False)
    assert reused == 1 and again[jobs[1].id].status == OK
    assert again[jobs[1].id].returns == records[jobs[1].id].returns  # deterministic rerun
    assert (tmp_path / "jobs" / f"{jobs[0].id}.json").read_text() == kept
    # A stored result of a different job under the same id (the profile changed since) is
    # not reused: the job runs (here a cheap one that fails at once, no torch import).
    changed = Job(jobs[0].entry, "nope", 0, jobs[0].changes)
    assert changed.id == jobs[0].id
    records, _, reused = run_jobs([changed], tmp_path, LocalExecutor(1), True, "t", False)
    assert reused == 0 and records[changed.id].status == ERROR


def test_run_jobs_interrupted_reports_incomplete(tmp_path: Path) -> None:
    # SIGTERM (what CI sends on cancel) mid-run: the running job is killed, nothing is
    # reported as finished, and the record says "incomplete", not a result.
    long = Entry("dqn", "CartPole-v1", (("total_steps", 10_000_000),), timeout_s=600)
    jobs = [long.job(0), long.job(1)]
    timer = threading.Timer(4.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        records, interrupted, _ = run_jobs(jobs, tmp_path, LocalExecutor(1, poll_s=0.2), False,
                                           "t", False)
    finally:
        timer.cancel()
    assert interrupted
    assert {r.status for r in records.values()} == {INCOMPLETE}
    assert not list(tmp_path.glob("jobs/*.json"))  # nothing finished, nothing recorded
