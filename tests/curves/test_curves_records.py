"""Job records, curve sets and reference files: round trips and clear errors for
malformed or missing baselines."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rlbench.curves.records import (
    ERROR,
    FORMAT,
    OK,
    BaselineError,
    CurveSet,
    Job,
    JobRecord,
    Reference,
    load_reference,
    machine,
    provenance,
)
from rlbench.runs import atomic_write_json


def _reference_dict(n_seeds: int = 3) -> dict:
    curves = CurveSet("dqn/CartPole-v1", "dqn", "CartPole-v1", tuple(range(n_seeds)),
                      np.array([1000, 2000]), np.full((n_seeds, 2), 100.0), (0.0, 500.0),
                      {"env_id": "CartPole-v1"})
    return Reference("quick", {curves.name: curves}, {"machine": "test"}).to_dict()


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "ref.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_reference_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "ref.json"
    atomic_write_json(path, _reference_dict())
    ref = load_reference(path)
    assert ref.profile == "quick" and ref.meta == {"machine": "test"}
    curves = ref.entries["dqn/CartPole-v1"]
    assert curves.returns.shape == (3, 2) and curves.seeds == (0, 1, 2)


def test_reference_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="not found.*--write-reference"):
        load_reference(tmp_path / "nope.json")


def test_reference_invalid_json(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="not valid JSON"):
        load_reference(_write(tmp_path, '{"format": '))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda d: d.update(format="something/else"), "expected format"),
        (lambda d: d.update(entries={}), "no entries"),
        (lambda d: d["entries"]["dqn/CartPole-v1"].pop("returns"), "lacks returns"),
        (lambda d: d["entries"]["dqn/CartPole-v1"].update(returns=[[1.0, 2.0]]), "shape"),
        (lambda d: d["entries"]["dqn/CartPole-v1"]["returns"][0].__setitem__(0, math.nan),
         "NaN"),
        (lambda d: d["entries"]["dqn/CartPole-v1"].update(steps=[2000, 1000]), "increasing"),
        (lambda d: d["entries"]["dqn/CartPole-v1"].update(score_range=[1, 0]), "score_range"),
        (lambda d: d["entries"]["dqn/CartPole-v1"].update(seeds=[0], returns=[[1.0, 2.0]]),
         "at least 2"),
    ],
)
def test_reference_malformed_gives_clear_error(tmp_path: Path, mutate, match: str) -> None:
    data = _reference_dict()
    mutate(data)
    # json.dumps writes NaN as the bare token NaN, which json.loads accepts: the curve-set
    # check (not the JSON parser) must catch it.
    with pytest.raises(BaselineError, match=match):
        load_reference(_write(tmp_path, data))


def test_reference_not_a_dict(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match=FORMAT):
        load_reference(_write(tmp_path, [1, 2]))


def test_job_canonical_changes_survive_json() -> None:
    job = Job("dqn/CartPole-v1", "dqn", 3, (("total_steps", 100), ("faults", ["target-not-updated"]),
                                             ("env_id", "CartPole-v1")))
    back = JobRecord.from_dict(json.loads(json.dumps(JobRecord(job, ERROR, error="x").to_dict())))
    assert back.job.same_run(job)
    assert job.config_changes() == {"env_id": "CartPole-v1", "faults": ("target-not-updated",),
                                    "total_steps": 100, "seed": 3}
    assert not job.same_run(Job("dqn/CartPole-v1", "dqn", 4, job.changes))
    assert job.id == "dqn_CartPole-v1-s3"


def test_job_record_from_summary() -> None:
    job = Job("dqn/CartPole-v1", "dqn", 0, (("env_id", "CartPole-v1"),))
    summary = {"eval_history": [{"step": 500, "return_mean": 20.0, "returns": [20.0]},
                                {"step": 1000, "return_mean": 40.0, "returns": [40.0]}],
               "sps": 100.0, "wall_seconds": 10.0}
    record = JobRecord.from_summary(job, summary)
    assert record.status == OK and record.steps == (500, 1000) and record.returns == (20.0, 40.0)


@pytest.mark.parametrize("history", [[], [{"step": 500, "return_mean": math.nan}]])
def test_job_record_without_finite_history_is_an_error(history: list) -> None:
    job = Job("dqn/CartPole-v1", "dqn", 0, ())
    record = JobRecord.from_summary(job, {"eval_history": history})
    assert record.status == ERROR and "eval history" in record.error


def test_curve_set_from_records_aligns_grids() -> None:
    job = Job("dqn[actors=2]/CartPole-v1", "dqn", 0, (("env_id", "CartPole-v1"),))
    a = JobRecord(job, OK, (1000, 2000), (10.0, 20.0))
    b = JobRecord(Job(job.entry, "dqn", 1, job.changes), OK, (1010, 2020), (10.0, 30.0))
    failed = JobRecord(Job(job.entry, "dqn", 2, job.changes), ERROR, error="boom")
    curves = CurveSet.from_records(job.entry, [b, failed, a], (0.0, 500.0))
    assert curves.seeds == (0, 1)  # the failed seed is left out, order by seed
    np.testing.assert_allclose(curves.steps, [1000, 2000])
    assert curves.env == "CartPole-v1"
    # Interpolated onto seed 0's grid (clamped below seed 1's first eval).
    np.testing.assert_allclose(curves.returns[1], [10.0, 10.0 + 20.0 * 990 / 1010])


def test_curve_set_rejects_duplicate_seeds() -> None:
    with pytest.raises(ValueError, match="duplicate seeds"):
        CurveSet("x", "dqn", "CartPole-v1", (1, 1), np.array([1, 2]), np.zeros((2, 2)), (0, 1))


def test_records_say_where_and_when_they_ran_and_a_set_says_when_machines_mix() -> None:
    job = Job("dqn/CartPole-v1", "dqn", 0, ())
    here = JobRecord(job, OK, (500,), (20.0,), machine="a (2 CPUs)", finished="2026-12-01T02:00:00Z")
    assert JobRecord.from_dict(json.loads(json.dumps(here.to_dict()))) == here
    # An old record file without the fields still loads.
    old = {k: v for k, v in here.to_dict().items() if k not in ("machine", "finished")}
    assert JobRecord.from_dict(old).machine is None

    resumed = JobRecord(Job("dqn/CartPole-v1", "dqn", 1, ()), OK, (500,), (30.0,),
                        machine="b (16 CPUs)", finished="2026-12-02T03:00:00Z")
    made = provenance([here, resumed, here])
    assert made == {"job_machines": {"a (2 CPUs)": 2, "b (16 CPUs)": 1},
                    "jobs_without_machine": 0, "mixed_machines": True,
                    "jobs_finished": ["2026-12-01T02:00:00Z", "2026-12-02T03:00:00Z"]}
    # Only ok records made curves: a timeout or an interrupted job (no machine: the parent
    # wrote it) is not another machine, and an old ok record without one is counted apart.
    timeout = JobRecord(Job("dqn/CartPole-v1", "dqn", 2, ()), ERROR, error="timed out")
    interrupted = JobRecord(Job("dqn/CartPole-v1", "dqn", 3, ()), "incomplete")
    made = provenance([here, here, timeout, interrupted, JobRecord.from_dict(old)])
    assert made["job_machines"] == {"a (2 CPUs)": 2} and made["mixed_machines"] is False
    assert made["jobs_without_machine"] == 1


def test_run_job_records_the_machine_it_ran_on(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from rlbench.curves.executors import run_job

    job = Job("dqn/probe:1", "dqn", 0, (("env_id", "probe:1"), ("total_steps", 20),
                                        ("learning_starts", 10), ("eval_interval", 20),
                                        ("eval_episodes", 1), ("hidden_sizes", (8,))))
    record = JobRecord.from_dict(run_job(job, str(tmp_path / "run")))
    assert record.status == OK, record.error
    assert record.machine == machine() and record.finished and record.finished.endswith("Z")
