"""`rlbench train ALGO` is generated from the trainer's config dataclass: every field is a
flag with its default and docstring, flags parse by the field's type, and `--set` still
works (and wins) for scripts."""

from __future__ import annotations

import dataclasses
import json

import pytest

from rlbench.cli import main
from rlbench.config import DQNConfig, field_docs


def test_help_lists_every_config_field_with_default_and_doc(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "dqn", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    docs = field_docs(DQNConfig)
    for f in dataclasses.fields(DQNConfig):
        assert "--" + f.name.replace("_", "-") in text, f.name
        assert " ".join(docs[f.name].split())[:40] in text, f.name
    assert "(default: 0.99)" in text and "--env" in text and "--steps" in text


def test_flags_and_set_build_the_config(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["train", "dqn", "--env", "probe:1", "--steps", "60", "--learning-starts", "20",
            "--hidden-sizes", "8,8", "--double-q", "false", "--eval-episodes", "1",
            "--set", "learning_starts=30", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    config = json.loads((out / "summary.json").read_text())["config"]
    assert (config["env_id"], config["total_steps"], config["hidden_sizes"]) == ("probe:1", 60, [8, 8])
    assert config["double_q"] is False and config["learning_starts"] == 30  # --set wins
    capsys.readouterr()


def test_a_bad_flag_value_names_the_field(capsys) -> None:
    assert main(["train", "dqn", "--gamma", "abc", "--quiet"]) == 2
    assert "DQNConfig.gamma expects float" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a field SAC does not have: argparse's usage error
        main(["train", "sac", "--actors", "2"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --actors" in capsys.readouterr().err


@pytest.mark.parametrize("algo, loss", [("dqn", "huber"),
                                        ("iqn", "mse")])  # IQN: its unused default, not huber
def test_a_preset_applies_before_the_flags(algo: str, loss: str, tmp_path, capsys) -> None:
    # rl-zoo tunes QR-DQN on CartPole with DQN's values; IQN has no TD-loss choice to set.
    out = tmp_path / "run"
    assert main(["train", algo, "--preset", "zoo", "--env", "probe:1", "--steps", "40",
                 "--learning-starts", "20", "--train-frequency", "4", "--gradient-steps", "1",
                 "--eval-episodes", "1", "--quiet", "--out", str(out)]) == 0
    config = json.loads((out / "summary.json").read_text())["config"]
    assert config["hidden_sizes"] == [256, 256] and config["learning_rate"] == 2.3e-3  # the preset
    assert config["loss"] == loss
    assert config["learning_starts"] == 20  # the flag wins over the preset
    capsys.readouterr()
