"""Exports: `rlbench export` writes one tidy CSV that pandas and rliable read as it is, and
`rlbench train --track tensorboard|wandb` feeds a tracker from the run's own records
(event files read back with TensorBoard's own reader, openrlbenchmark tag names)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from rlbench import runs
from rlbench.cli import main
from rlbench.exports import COLUMNS
from rlbench.runs import RunRecorder, tracking
from tests.curves.test_curves_ab import (  # noqa: F401 — skill_plugin: the fixture used below
    SkillConfig,
    nightly_folder,
    skill_plugin,
    train_runs,
)

pd = pytest.importorskip("pandas")
# The `skill` test trainer (tests/curves/test_curves_ab.py), registered for every test here.
pytestmark = pytest.mark.usefixtures("skill_plugin")


def _summaries(root: Path) -> dict[str, dict]:
    return {str(p.parent): json.loads(p.read_text()) for p in root.rglob("summary.json")}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("rlbench: error: ") and err.count("\n") == 1
    return err


# -- rlbench export ------------------------------------------------------------------------------
def test_export_run_folders_is_a_tidy_csv_for_pandas_and_rliable(tmp_path: Path,
                                                                  capsys) -> None:
    metrics = pytest.importorskip("rliable.metrics")
    fast = train_runs(tmp_path / "fast", range(3), skill=1.0)
    slow = train_runs(tmp_path / "slow", range(3), skill=0.5)
    out = tmp_path / "out" / "curves.csv"
    assert main(["export", str(fast), str(slow), str(fast / "s0"), "--csv", str(out)]) == 0
    assert "24 rows from 6 runs" in capsys.readouterr().err  # s0 given twice, exported once
    assert [p.name for p in out.parent.iterdir()] == ["curves.csv"]  # atomic: no temp file left

    df = pd.read_csv(out)
    assert tuple(df.columns) == COLUMNS and len(df) == 6 * 4
    # Plain runs of one algo/env are told apart by the config fields they differ in.
    assert set(df.variant) == {"skill=1.0", "skill=0.5"}
    for run, summary in {**_summaries(fast), **_summaries(slow)}.items():
        rows = df[df.run == run]
        assert rows.algo.unique().tolist() == ["skill"] and rows.env.unique().tolist() == ["probe:4"]
        assert rows.seed.unique().tolist() == [summary["seed"]]
        assert rows.step.tolist() == [h["step"] for h in summary["eval_history"]]
        assert rows["return"].tolist() == [h["return_mean"] for h in summary["eval_history"]]

    # rliable's input: {algorithm: [runs x tasks]} of (here) final returns.
    final = df[df.step == df.step.max()]
    scores = {v: g.pivot(index="seed", columns="env", values="return").to_numpy()
              for v, g in final.groupby("variant")}
    assert scores["skill=1.0"].shape == (3, 1)
    iqm = metrics.aggregate_iqm(scores["skill=1.0"])
    assert iqm == pytest.approx(1.0)  # skill 1 plays the rewarded action at the end
    assert metrics.aggregate_iqm(scores["skill=0.5"]) < iqm


def test_export_nightly_folder_keeps_entry_variants_and_skips_unfinished_jobs(
        tmp_path: Path, capsys) -> None:
    night = nightly_folder(tmp_path, "night", skill=2.0)
    job = night / "jobs" / "skill_fast__probe_4-s2.json"
    job.write_text(json.dumps(json.loads(job.read_text()) | {"status": "error", "error": "boom"}))
    assert main(["export", str(night), "--csv", "-"]) == 0
    captured = capsys.readouterr()
    assert f"skipped {job}: job error" in captured.err
    df = pd.read_csv(pd.io.common.StringIO(captured.out))
    assert len(df) == (2 * 4 - 1) * 4  # two entries x four seeds, one crashed; 4 eval points
    assert set(df.fillna("").variant) == {"", "fast"}
    record = json.loads((night / "jobs" / "skill_probe_4-s1.json").read_text())
    rows = df[(df.fillna("").variant == "") & (df.seed == 1)]
    assert rows["return"].tolist() == record["returns"] and rows.step.tolist() == record["steps"]
    assert rows.run.unique().tolist() == [str(night / "runs" / "skill_probe_4-s1")]


def test_export_episode_returns_from_metrics_jsonl(tmp_path: Path, capsys) -> None:
    rec = RunRecorder(tmp_path / "run", "toy", "none", SkillConfig(seed=3))
    episodes = [(7, 1.0), (12, -1.0), (30, 0.5)]
    for step, ret in episodes:
        rec.log(step, kind="episode", ret=ret, length=5)
    rec.log(30, kind="train", loss=0.1)
    rec.finish(30)
    assert main(["export", str(tmp_path), "--csv", str(tmp_path / "ep.csv"),
                 "--returns", "episode"]) == 0
    df = pd.read_csv(tmp_path / "ep.csv")
    assert list(zip(df.step, df["return"])) == episodes and set(df.seed) == {3}


@pytest.mark.parametrize(("args", "message"), [
    (["nope"], "nope: no such folder"),
    (["empty"], "not a nightly result folder (no jobs/*.json) and no run folder"),
    (["runs", "--csv", "{tmp}/runs/s0/summary.json/x.csv"], "cannot write"),
])
def test_export_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys, args,
                                                 message: str) -> None:
    train_runs(tmp_path / "runs", [0])
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / args[0]), *(a.format(tmp=tmp_path) for a in args[1:])]
    if "--csv" not in args:
        args += ["--csv", str(tmp_path / "out.csv")]
    assert main(["export", *args]) == 2
    assert message in _one_line_error(capsys)


# -- rlbench train --track -------------------------------------------------------------------------
def _scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in `logdir`, read with TensorBoard's own reader."""
    accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator").EventAccumulator
    acc = accumulator(str(logdir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_track_tensorboard_real_dqn_run_has_openrlbenchmark_tags(tmp_path: Path, capsys) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("tensorboardX")
    out = tmp_path / "dqn"
    assert main(["train", "dqn", "--env", "CartPole-v1", "--steps", "600", "--eval-interval",
                 "300", "--eval-episodes", "2", "--set", "learning_starts=200", "--set",
                 "log_interval=200", "--out", str(out), "--track", "tensorboard", "--quiet"]) == 0
    capsys.readouterr()
    scalars = _scalars(out / "tensorboard")
    assert {"charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/epsilon",
            "losses/loss", "eval/return", "eval/return_std"} <= scalars.keys()
    summary = json.loads((out / "summary.json").read_text())
    assert scalars["eval/return"] == [(h["step"], pytest.approx(h["return_mean"]))
                                      for h in summary["eval_history"]]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    episodes = [(r["step"], r["ret"]) for r in lines if r["kind"] == "episode"]
    assert scalars["charts/episodic_return"] == [(s, pytest.approx(r)) for s, r in episodes]
    assert [s for s, _ in scalars["charts/SPS"]] == [200, 400, 600]
    assert all(v > 0 for _, v in scalars["charts/SPS"])


def test_track_tensorboard_any_trainer_through_the_recorder(tmp_path: Path,
                                                            capsys) -> None:
    pytest.importorskip("tensorboardX")
    out = tmp_path / "skill"
    assert main(["train", "skill", "--out", str(out), "--track", "tensorboard", "--quiet"]) == 0
    capsys.readouterr()
    scalars = _scalars(out / "tensorboard")
    assert scalars.keys() == {"charts/SPS", "charts/epsilon", "losses/loss", "eval/return",
                              "eval/return_std", "eval/length"}
    assert [s for s, _ in scalars["losses/loss"]] == [100, 200, 300, 400]
    assert scalars["losses/loss"][-1][1] == pytest.approx(1 / 401)
    # The tracking context ends with the run: a later recorder tracks nothing.
    assert RunRecorder(tmp_path / "later", "x", "y", SkillConfig()).trackers == []


def test_track_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                         capsys) -> None:
    with pytest.raises(ValueError, match="unknown tracker\\(s\\) nope; known: tensorboard, wandb"):
        RunRecorder(tmp_path, "x", "y", SkillConfig(), track=("nope",))
    with pytest.raises(ValueError, match="needs a run folder"), tracking("tensorboard"):
        RunRecorder(None, "x", "y", SkillConfig())
    # Without the package: one line, exit 2, before any training.
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["train", "skill", "--out", str(tmp_path / "r"), "--track", "tensorboard"]) == 2
    assert "--track tensorboard needs tensorboardX" in _one_line_error(capsys)
    assert not (tmp_path / "r" / "summary.json").exists()


def test_track_scalar_names_follow_openrlbenchmark() -> None:
    assert runs.tracker_scalars("episode", {"ret": 9.0, "length": 9}) == {
        "charts/episodic_return": 9.0, "charts/episodic_length": 9.0}
    train = runs.tracker_scalars("train", {"sps": 100.0, "q_loss": 0.5, "alpha": 0.2,
                                           "buffer": {"count": 3}, "eval_return": 1.0,
                                           "double": True, "lr": np.float32(1e-3)})
    assert train == {"charts/SPS": 100.0, "losses/q_loss": 0.5, "losses/alpha": 0.2,
                     "charts/learning_rate": pytest.approx(1e-3)}


def test_track_wandb_offline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys) -> None:
    pytest.importorskip("wandb")  # not a dependency of rlbench: tested where it is installed
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "skill"
    assert main(["train", "skill", "--out", str(out), "--track", "wandb", "--quiet"]) == 0
    assert list((out / "wandb").glob("wandb/offline-run-*")) or list((out / "wandb").glob("offline-run-*"))
