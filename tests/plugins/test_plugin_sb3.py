"""The rlbench.api protocol on code nobody here wrote: Stable-Baselines3's DQN and SAC,
registered by the example plugin `examples/rlbench-sb3` through entry points."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rlbench_sb3", reason="the example plugin is not installed "
                    "(pip install -c constraints.txt -e examples/rlbench-sb3)")
pytest.importorskip("stable_baselines3", reason="Stable-Baselines3 is not installed")
import torch

from rlbench import api

pytestmark = pytest.mark.smoke

ENV = os.environ | {"MUJOCO_GL": "disable"}
TINY_DQN = {"learning_starts": 100, "buffer_size": 1_000}


def test_plugin_sb3_entry_points_are_registered() -> None:
    names = api.trainer_names()
    assert {"sb3-dqn", "sb3-sac", "sbx-dqn", "sbx-sac"} <= set(names)
    dqn, sac = api.get_spec("sb3-dqn"), api.get_spec("sb3-sac")
    assert dqn.action_kinds == {"discrete"} and sac.action_kinds == {"continuous"}
    assert dqn.config().target_update_interval == 10_000  # SB3's default, not ours
    assert sac.config().tau == 0.005


def test_plugin_sb3_dqn_train_writes_run_record(tmp_path: Path) -> None:
    summary = api.train("sb3-dqn", out_dir=tmp_path, env_id="CartPole-v1", seed=1,
                        total_steps=400, eval_interval=200, eval_episodes=2, **TINY_DQN)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["algo"] == "sb3-dqn" and on_disk["backend"] == "sb3"
    assert on_disk["steps"] == summary["steps"] == 400
    assert [e["step"] for e in on_disk["eval_history"]] == [200, 400]
    assert all(e["completed"] == 2 for e in on_disk["eval_history"])
    assert on_disk["config"]["target_update_interval"] == 10_000
    train = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").open()) if r["kind"] == "train"]
    # SB3's own logger values come through: its loss and update count after learning_starts.
    assert train[-1]["updates"] == (400 - 100) // 4 and np.isfinite(train[-1]["loss"])


def test_plugin_sb3_dqn_advance_in_slices_equals_one_call() -> None:
    """advance() is resumable: two slices train exactly the one-call model (env, buffer,
    counters and the exploration schedule carry over; SB3 alone restarts the schedule)."""
    def trained(*slices: int) -> api.Trainer:
        trainer = api.make_trainer("sb3-dqn", env_id="CartPole-v1", total_steps=400, **TINY_DQN)
        for steps in slices:
            trainer.advance(steps)
        return trainer

    whole, sliced = trained(400), trained(200, 200)
    assert whole.env_steps == sliced.env_steps == 400
    assert whole.metrics()["epsilon"] == sliced.metrics()["epsilon"]
    for a, b in zip(whole.model.q_net.parameters(), sliced.model.q_net.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(("algo", "env_id", "n_values"),
                         [("sb3-dqn", "probe:4", 2), ("sb3-sac", "probe:4-continuous", 1)])
def test_plugin_sb3_values_and_policy_have_protocol_shapes(algo: str, env_id: str,
                                                           n_values: int) -> None:
    trainer = api.make_trainer(algo, env_id=env_id, total_steps=120, learning_starts=100,
                               batch_size=32, buffer_size=1_000)
    trainer.advance(120)
    assert api.has_values(trainer) and trainer.env_steps == 120
    obs = np.zeros(1, np.float32)
    values = trainer.values(obs)
    assert values.shape == (n_values,) and np.isfinite(values).all()
    action = trainer.policy()(obs)
    assert trainer.model.action_space.contains(np.asarray(action, dtype=trainer.model.action_space.dtype))
    assert trainer.metrics()["updates"] > 0


def test_plugin_sb3_cli_train(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rlbench.cli", "train", "sb3-dqn", "--env", "probe:2",
         "--steps", "300", "--eval-interval", "300", "--eval-episodes", "2", "--seed", "3",
         "--set", "learning_starts=50", "--set", "buffer_size=1000", "--out", str(tmp_path)],
        capture_output=True, text=True, env=ENV, timeout=300)
    assert out.returncode == 0, out.stderr
    printed = json.loads(out.stdout)
    assert printed["algo"] == "sb3-dqn" and printed["steps"] == 300 and printed["seed"] == 3
    assert "[sb3-dqn]" in out.stderr  # the progress line
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["env"] == "probe:2" and summary["config"]["learning_starts"] == 50


def test_plugin_sb3_dqn_passes_the_fast_checks() -> None:
    """A fast subset of `rlbench check` on SB3's DQN: its evaluation runs end at the time
    limit, and its value bootstraps through truncation (SB3's handle_timeout_termination).
    The full battery's tables are in examples/rlbench-sb3/README.md."""
    battery = pytest.importorskip("rlbench.check.battery", reason="rlbench check is not here")
    # 800 probe steps (the spec's 2,000 are for the whole battery) reach V(0) = 1.98-1.99 on
    # seeds 0-2 against 2 ± 0.2; truncation stored as terminal would give 1.
    spec = dataclasses.replace(api.get_spec("sb3-dqn"), check_steps=800)
    report = battery.run_battery(spec, only=["eval-protocol", "timelimit-value"])
    assert report.ok, [(c.name, c.reason) for c in report.failed]
    assert [c.verdict for c in report.checks] == ["pass", "pass"]
