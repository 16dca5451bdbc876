"""`rlbench nightly` as a user types it, on the tiny `smoke` profile: make a reference,
run the nightly against it, resume it; bad baselines give clear errors and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from rlbench.cli import main

pytestmark = pytest.mark.smoke

RLBENCH = Path(sys.executable).with_name("rlbench")


def _rlbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [str(RLBENCH)] if RLBENCH.exists() else [sys.executable, "-m", "rlbench.cli"]
    env = os.environ | {"MUJOCO_GL": "disable"}
    return subprocess.run([*cmd, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def test_cli_nightly_against_committed_reference_then_resume(tmp_path: Path) -> None:
    # The committed smoke reference (made on the project machine) is the default baseline.
    run = _rlbench("nightly", "--profile", "smoke", "--out", "night", "--jobs", "2",
                   cwd=tmp_path)
    verdict = json.loads((tmp_path / "night" / "verdict.json").read_text())
    # 2 tiny seeds make the verdict itself uninformative; the exit status must match it.
    assert run.returncode == verdict["exit_status"] == (1 if verdict["verdict"] == "regressed" else 0)
    assert verdict["baseline"].endswith("references/smoke.json")
    assert "2/2 jobs" in run.stderr and "eta" in run.stderr  # progress: jobs done, time left
    report = (tmp_path / "night" / "report.md").read_text()
    assert "![dqn/CartPole-v1](plots/dqn_CartPole-v1.png)" in report
    assert "False alarms (A/A)" in report and (tmp_path / "night" / "report.html").is_file()

    resumed = _rlbench("nightly", "--profile", "smoke", "--out", "night", "--resume",
                       cwd=tmp_path)
    again = json.loads((tmp_path / "night" / "verdict.json").read_text())
    assert resumed.returncode == run.returncode
    assert again["run"]["resumed"] == 2  # nothing re-trained
    assert again["entries"] == verdict["entries"]


@pytest.mark.slow  # ~10 tiny training jobs: about a minute on an idle 2-core machine
def test_cli_nightly_write_reference_then_compare(tmp_path: Path) -> None:
    ref = tmp_path / "smoke.json"
    made = _rlbench("nightly", "--profile", "smoke", "--write-reference", str(ref),
                    "--out", "calib", "--jobs", "2", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    reference = json.loads(ref.read_text())
    assert reference["entries"]["dqn/CartPole-v1"]["seeds"] == [10, 11, 12, 13]
    assert set(reference["calibration"]) >= {"aa", "power", "rule"}
    assert "Power on known faults" in (tmp_path / "calib" / "report.md").read_text()
    run = _rlbench("nightly", "--profile", "smoke", "--baseline", str(ref), "--out", "night",
                   "--jobs", "2", cwd=tmp_path)
    verdict = json.loads((tmp_path / "night" / "verdict.json").read_text())
    assert run.returncode == verdict["exit_status"]
    assert verdict["baseline"] == str(ref)


@pytest.mark.parametrize(
    "content, message",
    [(None, "baseline file not found"), ("{not json", "not valid JSON"),
     ('{"format": "rlbench.curves/1", "entries": {"x/CartPole-v1": {"algo": "x"}}}', "lacks"),
     (json.dumps({"format": "rlbench.curves/1", "profile": "other", "entries": {
         "iqn/CartPole-v1": {"algo": "iqn", "env": "CartPole-v1", "score_range": [0, 500],
                             "seeds": [1, 2], "steps": [500], "returns": [[10.0], [12.0]]}}}),
      "has no entry 'dqn/CartPole-v1'")],
)
def test_cli_nightly_bad_baseline_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    # In-process (same argv as the shell; no interpreter start-up per case).
    path = tmp_path / "baseline.json"
    if content is not None:
        path.write_text(content)
    code = main(["nightly", "--profile", "smoke", "--baseline", str(path),
                 "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "o" / "jobs").exists()  # failed before training anything
