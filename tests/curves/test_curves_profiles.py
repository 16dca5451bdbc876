"""Profiles: disjoint seeds, unique job ids, the CLI's profile list in sync; TOML profiles
(the built-ins are TOML files too) load to the suites they describe, round-trip, and every
mistake in one is a one-line error naming the problem."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from rlbench import api
from rlbench.cli import main
from rlbench.curves.cli import profile_help
from rlbench.curves.compare import Rule
from rlbench.curves.nightly import check_baseline, default_baseline
from rlbench.curves.profiles import (
    Entry,
    Probe,
    Profile,
    ProfileError,
    builtin_profiles,
    check_configs,
    dumps_profile,
    get_profile,
    load_profile,
    loads_profile,
    score_range,
)
from rlbench.curves.records import load_reference

BUILTINS = sorted(builtin_profiles())


def test_profiles_cli_help_matches_profiles() -> None:
    assert BUILTINS == ["full", "quick", "smoke"]
    assert profile_help() == {name: p.description for name, p in builtin_profiles().items()}


@pytest.mark.parametrize("name", BUILTINS)
def test_profiles_jobs_are_unique_and_seeds_disjoint(name: str) -> None:
    profile = get_profile(name)
    ids = [j.id for j in profile.jobs() + profile.reference_jobs()]
    assert len(ids) == len(set(ids))
    assert not set(profile.seeds) & set(profile.reference_seeds)
    # A/A calibration splits the reference pool into a nightly-sized set and >= 2 others.
    assert len(profile.reference_seeds) >= len(profile.seeds) + 2


@pytest.mark.parametrize("name", BUILTINS)
def test_profiles_builtin_round_trips_through_toml(name: str) -> None:
    profile = get_profile(name)
    back = loads_profile(dumps_profile(profile), name)
    assert back == profile
    assert back.jobs() == profile.jobs() and back.reference_jobs() == profile.reference_jobs()


@pytest.mark.parametrize("name", BUILTINS)
def test_profiles_builtin_toml_is_the_suite_its_committed_reference_was_made_with(name: str) -> None:
    # Every built-in profile has a committed reference (the scheduled nightly needs one on
    # night one), and its TOML file must run exactly the jobs that reference was made with
    # (same entries and config changes), or every nightly would refuse.
    check_baseline(get_profile(name), load_reference(default_baseline(name)), default_baseline(name))


@pytest.mark.parametrize("name", BUILTINS)
def test_profiles_builtin_configs_are_valid_for_their_trainers(name: str) -> None:
    check_configs(get_profile(name))  # a missing backend is skipped, as documented


def test_profiles_full_meets_the_nightly_server_spec() -> None:
    full = get_profile("full")
    assert len(full.seeds) >= 5
    # A/A calibration draws candidate-sized splits from the reference seeds.
    assert len(full.reference_seeds) >= 2 * len(full.seeds)
    budgets = {e.name: dict(e.changes)["total_steps"] for e in full.entries}
    assert budgets["dqn/CartPole-v1"] == budgets["iqn/CartPole-v1"] == 100_000
    assert budgets["sac/dmc:cartpole-swingup"] > dict(
        next(e for e in full.entries if e.algo == "sac").changes).get("learning_starts", 5_000)
    assert any(dict(e.changes).get("actors", 0) >= 1 for e in full.entries)
    # power is calibrated for every algorithm the profile trains
    assert {p.entry.algo for p in full.probes} == {e.algo for e in full.entries}


def test_profiles_quick_covers_every_trainer_kind() -> None:
    quick = get_profile("quick")
    assert {e.algo for e in quick.entries} >= {"dqn", "iqn", "sac"}
    assert any(dict(e.changes).get("actors", 0) >= 1 for e in quick.entries)
    assert all(p.fault == "target-not-updated" for p in quick.probes)


def test_profiles_overlapping_seeds_rejected() -> None:
    with pytest.raises(ValueError, match="overlap"):
        Profile("x", (Entry("dqn", "CartPole-v1"),), seeds=(0, 1), reference_seeds=(1, 2, 3))


def test_profiles_unknown_names_rejected() -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("nope")
    with pytest.raises(ValueError, match="no score range"):
        score_range("Pendulum-v1")
    assert score_range("dmc:walker-walk") == (0.0, 1000.0)


# -- user profiles naming a plugin trainer -------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ToyConfig:
    env_id: str = "probe:4"
    seed: int = 0
    total_steps: int = 30
    eval_interval: int = 10
    eval_episodes: int = 2
    learning_rate: float = 1e-3
    hidden: tuple[int, ...] = (8,)
    faults: tuple[str, ...] = ()  # probes switch a fault on through this field

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


TOY = api.TrainerSpec("toy", {"discrete"}, ToyConfig, lambda config: None, summary="test plugin")


@pytest.fixture
def toy_plugin(monkeypatch: pytest.MonkeyPatch) -> api.TrainerSpec:
    """`toy` registered in-process (what `rlbench.api.trainer_names` lists), then removed."""
    monkeypatch.setattr(api, "_loaded", {})
    api.register(TOY)
    return TOY


USER_TOML = """
name = "mine"
description = "a plugin trainer on two envs"
seeds = [0, 1, 2]
reference_seeds = [10, 11, 12, 13, 14]
timeout_s = 120
baseline = "refs/mine.json"

[budgets]
short = { total_steps = 300, eval_interval = 100 }

[score_ranges]
"probe:" = [0.0, 1.0]

[rule]
min_effect = 0.2
scores = ["auc", "final"]

[[entries]]
algo = "toy"
env = "probe:4"
budget = "short"

[[entries]]
algo = "toy"
env = "probe:4"
variant = "lr=1e-2"
budget = "short"
config = { learning_rate = 1e-2, hidden = [16, 16], total_steps = 400 }
timeout_s = 60

[[entries]]
algo = "toy"
env = "CartPole-v1"
score_range = [0, 200]

[[probes]]
entry = "toy/probe:4"
fault = "target-not-updated"
"""


def test_profiles_user_toml_loads_to_the_suite_it_describes(toy_plugin, tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(USER_TOML)
    short = (("total_steps", 300), ("eval_interval", 100))
    base = Entry("toy", "probe:4", short, "", (0.0, 1.0), 120.0)
    expected = Profile(
        name="mine",
        entries=(
            base,
            Entry("toy", "probe:4", (("total_steps", 400), ("eval_interval", 100),
                                     ("learning_rate", 1e-2), ("hidden", (16, 16))),
                  "lr=1e-2", (0.0, 1.0), 60.0),
            Entry("toy", "CartPole-v1", (), "", (0.0, 200.0), 120.0),
        ),
        seeds=(0, 1, 2), reference_seeds=(10, 11, 12, 13, 14),
        probes=(Probe(base, "target-not-updated"),),
        rule=Rule(scores=("auc", "final"), min_effect=0.2),
        description="a plugin trainer on two envs",
        baseline=(tmp_path / "refs" / "mine.json").resolve(),
    )
    profile = get_profile(str(path))
    assert profile == expected
    assert profile.jobs() == expected.jobs() and profile.reference_jobs() == expected.reference_jobs()
    assert profile.jobs()[3].config_changes() == {
        "env_id": "probe:4", "seed": 0, "total_steps": 400, "eval_interval": 100,
        "learning_rate": 1e-2, "hidden": (16, 16)}
    check_configs(profile)  # toy accepts every field and value above
    back = loads_profile(dumps_profile(profile), "mine")
    assert back == profile


BAD = [
    ("seeds = [0, 1", "not valid TOML"),
    ('seeds = [0]\nreference_seeds = [1]\n[[entries]]\nalgo = "nope"\nenv = "CartPole-v1"',
     "unknown trainer 'nope'; registered: dqn, iqn, sac, .*toy"),
    ('seeds = [0]\nreference_seeds = [1]\n[[entries]]\nalgo = "toy"\nenv = "CartPole-v1"\n'
     'config = { env_id = "x" }', r"entries\[0\].config.env_id: set the env with"),
    ('seeds = [0]\nreference_seeds = [1]\nbudget = 3\n[[entries]]\nalgo = "toy"\nenv = "CartPole-v1"',
     "unknown key\\(s\\) budget in the top level"),
    ('seeds = [0]\nreference_seeds = [0]\n[[entries]]\nalgo = "toy"\nenv = "CartPole-v1"',
     "overlap"),
    ('seeds = [0, "1"]\nreference_seeds = [2]\n[[entries]]\nalgo = "toy"\nenv = "CartPole-v1"',
     "seeds must be a non-empty array of non-negative integers"),
    ('seeds = [0]\nreference_seeds = [1]\n[[entries]]\nalgo = "toy"\nenv = "Pendulum-v1"',
     r"entries\[0\] \(toy/Pendulum-v1\): no score range known"),
    ('seeds = [0]\nreference_seeds = [1]\n[[entries]]\nalgo = "toy"\nenv = "CartPole-v1"\n'
     '[[probes]]\nentry = "dqn/CartPole-v1"\nfault = "target-not-updated"',
     "probes\\[0\\].entry 'dqn/CartPole-v1' is not an entry"),
    ('seeds = [0]\nreference_seeds = [1]\n[[entries]]\nalgo = "toy"\nenv = "CartPole-v1"\n'
     '[[probes]]\nentry = "toy/CartPole-v1"\nfault = "no-such-fault"', "unknown fault id"),
    ('seeds = [0]\nreference_seeds = [1]\n[rule]\nmin_effect = -1\n[[entries]]\nalgo = "toy"\n'
     'env = "CartPole-v1"', "min_effect must be >= 0"),
    ('seeds = [0]\nreference_seeds = [1]\n[[entries]]\nalgo = "toy"\nenv = "CartPole-v1"\n'
     'budget = "long"', "budget 'long' is not in \\[budgets\\]"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m[:24] for _, m in BAD])
def test_profiles_bad_toml_is_a_clear_error(toy_plugin, tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message) as info:
        load_profile(path)
    assert str(info.value).startswith(f"profile {path}: ") and "\n" not in str(info.value)


@pytest.mark.parametrize(("config", "message"), [
    ("{ learning_rat = 0.1 }", "ToyConfig has no field\\(s\\) learning_rat; fields are: "),
    ('{ total_steps = "20k" }', "config total_steps = '20k': ToyConfig.total_steps expects int"),
    ("{ learning_rate = -1.0 }", "learning_rate must be > 0"),
])
def test_profiles_bad_config_fields_fail_before_training(toy_plugin, config: str, message: str) -> None:
    profile = loads_profile('seeds = [0]\nreference_seeds = [1]\n[[entries]]\nalgo = "toy"\n'
                            f'env = "CartPole-v1"\nconfig = {config}', "p")
    with pytest.raises(ProfileError, match=f"profile p: entry toy/CartPole-v1: {message}"):
        check_configs(profile)


def test_profiles_cli_bad_profile_is_one_line_and_exit_2(toy_plugin, tmp_path: Path,
                                                         capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('seeds = [0]\nreference_seeds = [1]\n[[entries]]\nalgo = "toy"\n'
                   'env = "CartPole-v1"\nconfig = { no_such_field = 1 }')
    for profile, message in ((tmp_path / "missing.toml", "profile file not found"),
                             (tmp_path, "profile file not found"),
                             (bad, "entry toy/CartPole-v1: ToyConfig has no field(s) no_such_field")):
        code = main(["nightly", "--profile", str(profile), "--out", str(tmp_path / "out"),
                     "--quiet"])
        err = capsys.readouterr().err
        assert code == 2
        assert err.startswith("rlbench: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing ran


def test_profiles_cli_print_profile_reads_back(tmp_path: Path, capsys) -> None:
    assert main(["nightly", "--profile", "quick", "--print-profile"]) == 0
    text = capsys.readouterr().out
    assert loads_profile(text, "quick") == get_profile("quick")
    json.dumps(text)  # plain text, nothing else on stdout
