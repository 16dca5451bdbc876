"""`rlbench train dqn|iqn` as a user types it (real subprocesses, tiny budgets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

pytestmark = pytest.mark.smoke

ENV = os.environ | {"MUJOCO_GL": "disable"}
TINY = ["--steps", "800", "--eval-interval", "400", "--eval-episodes", "2",
        "--set", "learning_starts=200", "--set", "train_frequency=1", "--set", "batch_size=32",
        "--set", "log_interval=200"]


def rlbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlbench.cli", *args], capture_output=True,
                          text=True, env=ENV, timeout=300)


@pytest.mark.parametrize("algo", ["dqn", "iqn"])
def test_cli_train_torch_writes_run_record(algo: str, tmp_path: Path) -> None:
    out = rlbench("train", algo, "--env", "CartPole-v1", "--seed", "1", "--device", "cpu",
                  "--out", str(tmp_path), *TINY)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["algo"] == algo and printed["steps"] == 800
    assert f"[{algo}]" in out.stderr and "sps" in out.stderr  # the progress line
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "torch" and summary["env"] == "CartPole-v1"
    assert summary["seed"] == 1 and summary["device"] == "cpu"
    assert summary["updates"] == 601  # one per step from step 200 to 800 (train_frequency=1)
    assert summary["buffer"]["size"] == 800
    assert [e["step"] for e in summary["eval_history"]] == [400, 800]
    assert all(e["completed"] == 2 for e in summary["eval_history"])
    assert summary["final_eval_return"] == summary["eval_history"][-1]["return_mean"]
    assert summary["sps"] > 0 and "torch" in summary["versions"]
    kinds = {json.loads(line)["kind"] for line in (tmp_path / "metrics.jsonl").open()}
    assert kinds == {"episode", "train", "eval"}


def test_cli_train_rejects_bad_config_with_clear_error(tmp_path: Path) -> None:
    out = rlbench("train", "dqn", "--out", str(tmp_path), "--set", "gamma=2")
    assert out.returncode == 2 and "gamma" in out.stderr and "Traceback" not in out.stderr
    out = rlbench("train", "dqn", "--env", "Pendulum-v1", "--steps", "10", "--out", str(tmp_path))
    assert out.returncode == 2 and "Discrete" in out.stderr


@pytest.mark.gpu
@pytest.mark.parametrize("algo", ["dqn", "iqn"])
def test_cli_train_torch_on_cuda(algo: str, tmp_path: Path) -> None:
    """The same code on a GPU: a tiny run on --device cuda records device cuda:0-ish."""
    out = rlbench("train", algo, "--device", "cuda", "--out", str(tmp_path), *TINY)
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["device"].startswith("cuda") and summary["updates"] == 601
