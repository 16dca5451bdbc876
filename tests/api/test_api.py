"""The public trainer protocol (`rlbench.api`): specs validate what they promise, plugins
are found through the entry-point group, every built-in trainer implements the protocol,
and `advance` is resumable (n + m steps in two calls is the n + m-step run)."""

from __future__ import annotations

import dataclasses
import json
from importlib.metadata import EntryPoint

import numpy as np
import pytest

from rlbench import api
from rlbench.cli import main


@dataclasses.dataclass(frozen=True)
class CountingConfig:
    env_id: str = "probe:4"
    seed: int = 0
    total_steps: int = 30
    eval_interval: int = 10
    eval_episodes: int = 2


class CountingTrainer:
    """The smallest honest trainer: always plays action 1 (probe 4's best) and counts."""

    def __init__(self, config: CountingConfig) -> None:
        self.config, self.env_steps = config, 0

    def advance(self, steps: int) -> None:
        self.env_steps += steps

    def policy(self):
        return lambda obs: 1

    def metrics(self) -> dict[str, float]:
        return {"steps_seen": float(self.env_steps)}


COUNTING = api.TrainerSpec("counting", {"discrete"}, CountingConfig, CountingTrainer,
                           summary="test plugin")


@pytest.fixture
def counting_plugin(monkeypatch):
    """`counting` registered the way an installed package registers: an entry point."""
    ep = EntryPoint("counting", f"{__name__}:COUNTING", api.ENTRY_POINT_GROUP)
    monkeypatch.setattr(api, "entry_points", lambda group: [ep] if group == api.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(api, "_loaded", {})
    return COUNTING


def test_spec_rejects_configs_without_the_required_fields() -> None:
    @dataclasses.dataclass
    class NoSeed:
        env_id: str = "x"
        total_steps: int = 1

    with pytest.raises(TypeError, match="lacks the field.*seed"):
        api.TrainerSpec("x", {"discrete"}, NoSeed, lambda c: None)
    with pytest.raises(ValueError, match="action_kinds"):
        api.TrainerSpec("x", {"pixels"}, CountingConfig, CountingTrainer)
    with pytest.raises(ValueError, match="check_overrides.*gamma"):
        api.TrainerSpec("x", {"discrete"}, CountingConfig, CountingTrainer,
                        check_overrides={"gamma": 0.5})
    with pytest.raises(ValueError, match="preset 'fast'.*gamma"):
        api.TrainerSpec("x", {"discrete"}, CountingConfig, CountingTrainer,
                        presets={"fast": {"gamma": 0.5}})


def test_unknown_trainer_and_unknown_field_are_named() -> None:
    with pytest.raises(ValueError, match="unknown trainer 'nope'.*dqn"):
        api.get_spec("nope")
    with pytest.raises(ValueError, match="CountingConfig has no field.*gamma"):
        api.replace_config(CountingConfig(), gamma=0.5)


def test_entry_point_plugin_is_listed_built_and_trained(counting_plugin, tmp_path) -> None:
    assert "counting" in api.trainer_names()
    assert api.get_spec("counting") is COUNTING
    summary = api.train("counting", out_dir=tmp_path, total_steps=25)
    # The generic run evaluates at every eval_interval and at the end, with rlbench's protocol.
    assert [e["step"] for e in summary["eval_history"]] == [10, 20, 25]
    assert summary["final_eval_return"] == 1.0
    assert json.loads((tmp_path / "summary.json").read_text())["config"]["total_steps"] == 25


def test_cli_trains_an_entry_point_plugin(counting_plugin, tmp_path, capsys) -> None:
    assert main(["train", "counting", "--steps", "20", "--quiet", "--out", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["final_eval_return"] == 1.0
    with pytest.raises(SystemExit) as exit_:  # flags come from the plugin's own config
        main(["train", "counting", "--device", "cpu", "--quiet"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --device cpu" in capsys.readouterr().err


def test_entry_point_must_name_a_spec_of_the_same_name(monkeypatch) -> None:
    ep = EntryPoint("other", f"{__name__}:COUNTING", api.ENTRY_POINT_GROUP)
    monkeypatch.setattr(api, "entry_points", lambda group: [ep])
    monkeypatch.setattr(api, "_loaded", {})
    with pytest.raises(ValueError, match="'other' names a spec called 'counting'"):
        api.get_spec("other")


BUILTIN_PROBE = {"dqn": "probe:4", "iqn": "probe:4", "sac": "probe:4-continuous"}


@pytest.mark.parametrize("name", list(BUILTIN_PROBE))
def test_builtin_trainers_implement_the_protocol(name: str) -> None:
    pytest.importorskip("jax" if name == "sac" else "torch")
    spec = api.get_spec(name)
    trainer = api.make_trainer(name, env_id=BUILTIN_PROBE[name], total_steps=300,
                               **spec.check_overrides)
    assert isinstance(trainer, api.ValueTrainer)
    trainer.advance(250)
    assert trainer.env_steps == 250
    action = trainer.policy()(np.zeros(1, np.float32))
    assert np.shape(trainer.values(np.zeros(1, np.float32))) == ((2,) if name != "sac" else (1,))
    assert np.asarray(action).size == 1
    assert all(isinstance(v, float) for v in trainer.metrics().values())


@pytest.mark.parametrize("name", ["dqn", "sac"])
def test_advance_is_resumable(name: str) -> None:
    """advance(a) then advance(b) is the same run as advance(a + b): same Q-values, bit for
    bit (same process, same seed), so a check or a benchmark may slice a run however it likes."""
    pytest.importorskip("jax" if name == "sac" else "torch")
    spec = api.get_spec(name)
    config = spec.default_config(env_id=BUILTIN_PROBE[name], total_steps=400, **spec.check_overrides)
    whole, sliced = spec.make(config), spec.make(config)
    whole.advance(400)
    for steps in (1, 130, 269):
        sliced.advance(steps)
    obs = np.zeros(1, np.float32)
    assert sliced.env_steps == whole.env_steps == 400
    np.testing.assert_array_equal(sliced.values(obs), whole.values(obs))


def test_plugins_are_named_in_help_and_recorded_in_versions(capsys) -> None:
    from importlib.metadata import entry_points

    from rlbench.runs import package_versions

    eps = [ep for ep in entry_points(group=api.ENTRY_POINT_GROUP) if ep.dist is not None]
    if not eps:
        pytest.skip("no rlbench.trainers plugin installed (make installs examples/rlbench-sb3)")
    ep = eps[0]
    origin = api.plugin_origin(ep.name)
    assert origin == f"plugin from {ep.dist.name} {ep.dist.version}"
    versions = package_versions()
    assert versions[ep.dist.name] == ep.dist.version  # the plugin and what it requires
    if ep.dist.name == "rlbench-sb3":
        assert "stable-baselines3" in versions
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert f"{ep.name}: plugin from {ep.dist.name}" in " ".join(capsys.readouterr().out.split())


def test_actor_learner_declares_itself_not_reproducible() -> None:
    pytest.importorskip("torch")
    from rlbench.trainers.actor_learner import ActorLearnerTrainer

    assert api.is_reproducible(ActorLearnerTrainer) is False
