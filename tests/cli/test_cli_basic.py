"""The CLI as a user types it (real subprocesses, tiny budgets)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.smoke

ENV = os.environ | {"MUJOCO_GL": "disable"}


def rlbench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlbench.cli", *args], capture_output=True,
                          text=True, env=ENV, timeout=300)


@pytest.mark.parametrize("command", [[], ["envs"], ["eval"], ["train"]])
def test_cli_every_command_has_help(command: list[str]) -> None:
    out = rlbench(*command, "--help")
    assert out.returncode == 0 and "usage: rlbench" in out.stdout


def test_cli_envs_lists_all_families_as_json() -> None:
    out = rlbench("envs", "--json")
    assert out.returncode == 0
    families = {row["family"] for row in json.loads(out.stdout)}
    assert families == {"gymnasium", "dmc", "probe"}


def test_cli_eval_random_policy_one_env_per_family() -> None:
    out = rlbench("eval", "--episodes", "2", "--json")
    assert out.returncode == 0, out.stderr
    records = {r["env"]: r for r in json.loads(out.stdout)}
    assert set(records) == {"CartPole-v1", "dmc:cartpole-swingup", "probe:5"}
    assert records["dmc:cartpole-swingup"]["lengths"] == [1000, 1000]
    assert all(r["completed"] == 2 for r in records.values())


def test_cli_unknown_env_is_a_clear_error_not_a_traceback() -> None:
    out = rlbench("eval", "--env", "NoSuchEnv-v0")
    assert out.returncode == 2
    assert "unknown env id 'NoSuchEnv-v0'" in out.stderr and "Traceback" not in out.stderr


def test_cli_set_with_unparsable_value_names_the_field() -> None:
    proc = rlbench("train", "dqn", "--steps", "10", "--quiet", "--set", "gamma=abc")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "DQNConfig.gamma expects float" in proc.stderr and "abc" in proc.stderr


def test_cli_out_that_cannot_be_created_is_one_line_exit_2(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = rlbench("train", "dqn", "--steps", "10", "--quiet", "--out", str(blocker / "run"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "cannot create the run folder" in proc.stderr
