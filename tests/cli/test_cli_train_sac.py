"""`rlbench train sac` as a user types it (a real subprocess, a tiny budget)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jax")  # needs the `jax` extra: skipped where it is not installed

pytestmark = pytest.mark.smoke

ENV = os.environ | {"MUJOCO_GL": "disable"}


def test_cli_train_sac_pendulum_writes_summary_and_metrics(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "rlbench.cli", "train", "sac", "--env", "Pendulum-v1",
         "--steps", "300", "--seed", "1", "--out", str(out), "--eval-episodes", "1",
         "--set", "learning_starts=100", "--set", "hidden_sizes=32,32",
         "--set", "batch_size=32", "--set", "chunk_updates=8", "--set", "log_interval=100"],
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert printed["algo"] == "sac" and printed["backend"] == "jax" and printed["steps"] == 300
    assert "[sac]" in proc.stderr  # the progress line

    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["hidden_sizes"] == [32, 32] and summary["seed"] == 1
    assert summary["updates"] == 200 and summary["device"]
    final = summary["eval_history"][-1]
    assert final["completed"] == 1 and final["lengths"] == [200]  # Pendulum's time limit
    assert -2000.0 < summary["final_eval_return"] <= 0.0

    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [m for m in lines if m.get("kind") == "train"]
    assert [m["step"] for m in train] == [100, 200, 300]
    assert train[-1]["buffer"]["size"] == 300 and train[-1]["buffer"]["zero_obs_fraction"] == 0.0
    assert {"q_loss", "pi_loss", "alpha", "entropy"} <= train[-1].keys()
    assert [m["step"] for m in lines if m.get("kind") == "eval"] == [300]


def test_cli_train_sac_rejects_a_discrete_env(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rlbench.cli", "train", "sac", "--env", "CartPole-v1",
         "--steps", "10", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=ENV, timeout=300,
    )
    assert proc.returncode == 2 and "continuous" in proc.stderr
