"""Config parsing/validation, the fault switch, and run records (atomic, complete)."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from rlbench.config import TrainConfig, field_docs, with_overrides
from rlbench.faults import BY_ID, CATALOGUE, active_faults, parse_faults
from rlbench.runs import RunRecorder, atomic_write_json
from rlbench.types import EvalResult


def test_config_is_frozen_and_validates() -> None:
    cfg = TrainConfig()
    with pytest.raises(FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="total_steps"):
        TrainConfig(total_steps=0)
    with pytest.raises(ValueError, match="device"):
        TrainConfig(device="tpu")


def test_config_overrides_parse_by_field_type() -> None:
    cfg = with_overrides(TrainConfig(), {"seed": "4", "total_steps": "1e4", "env_id": "probe:1",
                                         "faults": "target-not-updated"})
    assert (cfg.seed, cfg.total_steps, cfg.env_id) == (4, 10_000, "probe:1")
    assert cfg.faults == ("target-not-updated",)
    with pytest.raises(ValueError, match="unknown TrainConfig field.*nope"):
        with_overrides(TrainConfig(), {"nope": "1"})


def test_config_every_field_is_documented() -> None:
    import dataclasses

    docs = field_docs(TrainConfig)
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= docs.keys()


def test_faults_default_off_and_unknown_ids_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLBENCH_FAULTS", raising=False)
    assert active_faults() == frozenset() and TrainConfig().faults == ()
    with pytest.raises(ValueError, match="unknown fault id.*no-such-fault"):
        parse_faults("no-such-fault")
    with pytest.raises(ValueError, match="unknown fault"):
        TrainConfig(faults=("typo",))
    monkeypatch.setenv("RLBENCH_FAULTS", "target-not-updated, no-grad-clipping")
    assert active_faults(["stale-optimizer"]) == {
        "target-not-updated", "no-grad-clipping", "stale-optimizer"}
    assert len(CATALOGUE) == len(BY_ID) == 16


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "out" / "summary.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()})  # fails mid-serialisation
    assert json.loads(path.read_text()) == {"a": 1}  # the old file survives, whole
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]  # no temp left behind


def test_atomic_write_gives_the_permissions_open_would(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_json(tmp_path / "atomic.json", {"a": 1})
    got, want = ((tmp_path / "atomic.json").stat().st_mode & 0o777, plain.stat().st_mode & 0o777)
    assert got == want, f"atomic write gave mode {got:o}, open() gives {want:o}"


def test_run_recorder_writes_metrics_and_summary(tmp_path: Path) -> None:
    rec = RunRecorder(tmp_path, "dqn", "torch", TrainConfig(env_id="probe:1", seed=2))
    rec.log(10, loss=0.5)
    rec.record_eval(10, EvalResult((1.0, 3.0), (1, 1), 2, 2))
    summary = rec.finish(steps=10, updates=4)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0] == {"step": 10, "loss": 0.5} and lines[1]["kind"] == "eval"
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for key in ("algo", "backend", "env", "seed", "steps", "config", "final_eval_return",
                "eval_history", "sps", "wall_seconds", "versions"):
        assert key in on_disk
    assert on_disk["final_eval_return"] == 2.0 and on_disk["env"] == "probe:1"
    assert on_disk["updates"] == 4 and "numpy" in on_disk["versions"]


def test_summary_records_the_git_commit_and_dirty_flag(tmp_path: Path) -> None:
    import subprocess

    rec = RunRecorder(tmp_path, "dqn", "torch", TrainConfig(env_id="probe:1", seed=2))
    git = json.loads(json.dumps(rec.finish(steps=0)))["git"]
    root = Path(__file__).resolve().parents[2]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode != 0:  # an unpacked sdist: nothing to record, and it says so
        assert git == {"commit": None, "dirty": None}
        return
    assert git["commit"] == head.stdout.strip()
    assert isinstance(git["dirty"], bool)
