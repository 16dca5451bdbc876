"""`rlbench compare A B`: the nightly rule on two finished sets of runs, A the reference.

The runs are real: a tiny plugin trainer (registered through `rlbench.api`) whose greedy
policy gets better at `skill` per budget, trained through `rlbench.api.train` into run
folders (summary.json, metrics.jsonl) and through the nightly's own `run_jobs` into
nightly result folders (jobs/*.json) from TOML profiles."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from rlbench import api
from rlbench.cli import main
from rlbench.curves.ab import compare_folders
from rlbench.curves.nightly import run_jobs
from rlbench.curves.profiles import load_profile
from rlbench.curves.records import JobRecord

PROBE_RANGE = {"probe:": (-1.0, 1.0)}  # probe:4 pays -1 or +1 per one-step episode


@dataclasses.dataclass(frozen=True)
class SkillConfig:
    env_id: str = "probe:4"
    seed: int = 0
    total_steps: int = 400
    eval_interval: int = 100
    eval_episodes: int = 20
    skill: float = 1.0
    """The greedy policy plays the rewarded action with probability skill × budget used."""


class SkillTrainer:
    """Learns nothing, improves on schedule: P(best action) = min(1, skill × steps / total)."""

    def __init__(self, config: SkillConfig) -> None:
        self.config, self.env_steps = config, 0

    def advance(self, steps: int) -> None:
        self.env_steps += steps

    def policy(self) -> Callable[[np.ndarray], int]:
        p = min(1.0, self.config.skill * self.env_steps / self.config.total_steps)
        rng = np.random.default_rng([self.config.seed, self.env_steps])
        return lambda obs: int(rng.random() < p)

    def metrics(self) -> dict[str, float]:
        return {"loss": 1.0 / (1 + self.env_steps), "epsilon": 0.1}


SKILL = api.TrainerSpec("skill", {"discrete"}, SkillConfig, SkillTrainer, summary="test plugin")


@pytest.fixture
def skill_plugin(monkeypatch: pytest.MonkeyPatch) -> api.TrainerSpec:
    """`skill` registered in-process for one test."""
    monkeypatch.setattr(api, "_loaded", {})
    api.register(SKILL)
    return SKILL


def train_runs(root: Path, seeds: range | list[int], **changes) -> Path:
    """One real run folder per seed under `root` (what `rlbench train --out` writes)."""
    for seed in seeds:
        api.train("skill", out_dir=root / f"s{seed}", seed=seed, **changes)
    return root


class InlineExecutor:
    """The nightly's executor contract, in this process (the plugin is registered here)."""

    def run(self, jobs, run_root: Path, on_result) -> None:
        for job in jobs:
            summary = api.train(job.algo, out_dir=run_root / job.id, **job.config_changes())
            on_result(JobRecord.from_summary(job, summary))


PROFILE = """
seeds = [0, 1, 2, 3]
reference_seeds = [10, 11, 12, 13, 14, 15]
[score_ranges]
"probe:" = [-1.0, 1.0]
[[entries]]
algo = "skill"
env = "probe:4"
[[entries]]
algo = "skill"
env = "probe:4"
variant = "fast"
config = {{ skill = {skill} }}
"""


def nightly_folder(tmp_path: Path, name: str, skill: float) -> Path:
    """A nightly result folder of a two-entry TOML profile, made by the nightly's run_jobs."""
    toml = tmp_path / f"{name}.toml"
    toml.write_text(PROFILE.format(skill=skill))
    profile = load_profile(toml)
    out = tmp_path / name
    records, interrupted, _ = run_jobs(profile.jobs(), out, InlineExecutor(), resume=False,
                                       label=name, progress=False)
    assert not interrupted and all(r.status == "ok" for r in records.values())
    return out


def test_ab_same_config_passes_and_a_slower_learner_regresses(skill_plugin, tmp_path: Path,
                                                              capsys) -> None:
    a = train_runs(tmp_path / "a", range(4))
    same = train_runs(tmp_path / "same", range(10, 14))
    slow = train_runs(tmp_path / "slow", range(10, 14), skill=0.3)

    result = compare_folders(a, same, score_ranges=PROBE_RANGE)
    assert result["verdict"] == "pass" and result["exit_status"] == 0
    assert result["kinds"] == {"reference": "runs", "candidate": "runs"}

    assert main(["compare", str(a), str(slow), "--score-range", "probe:=-1,1"]) == 1
    out = capsys.readouterr().out
    assert "skill/probe:4  REGRESSED  4 vs 4" in out and "Verdict: regressed (exit status 1)" in out

    assert main(["compare", str(a), str(slow), "--json", "--score-range", "probe:=-1,1"]) == 1
    data = json.loads(capsys.readouterr().out)
    auc = data["entries"]["skill/probe:4"]["comparison"]["scores"]["auc"]
    assert auc["verdict"] == "regressed" and auc["iqm_difference"]["point"] < -0.1
    assert auc["probability_of_improvement"]["high"] < 0.5
    # B against itself as reference the other way round: the improvement is seen too.
    assert compare_folders(slow, a, score_ranges=PROBE_RANGE)["verdict"] == "improved"


def test_ab_nightly_folders_per_entry_verdicts(skill_plugin, tmp_path: Path, capsys) -> None:
    a = nightly_folder(tmp_path, "a", skill=2.0)
    b = nightly_folder(tmp_path, "b", skill=0.5)  # only the `fast` entry got worse
    assert main(["compare", str(a), str(b), "--json", "--score-range", "probe:=-1,1"]) == 1
    data = json.loads(capsys.readouterr().out)
    verdicts = {n: e["verdict"] for n, e in data["entries"].items()}
    assert verdicts == {"skill/probe:4": "pass", "skill[fast]/probe:4": "regressed"}
    assert data["kinds"] == {"reference": "nightly", "candidate": "nightly"}


def test_ab_crashed_or_missing_jobs_are_errors_not_verdicts(skill_plugin, tmp_path: Path,
                                                           capsys) -> None:
    a = nightly_folder(tmp_path, "a", skill=2.0)
    b = nightly_folder(tmp_path, "b", skill=2.0)
    job = b / "jobs" / "skill_fast__probe_4-s2.json"
    record = json.loads(job.read_text())
    job.write_text(json.dumps(record | {"status": "error", "error": "RuntimeError: boom"}))
    result = compare_folders(a, b, score_ranges=PROBE_RANGE)
    entry = result["entries"]["skill[fast]/probe:4"]
    assert entry["verdict"] == "error" and "B seed 2 error (RuntimeError: boom)" in entry["error"]
    assert result["entries"]["skill/probe:4"]["verdict"] == "pass"
    assert result["verdict"] == "error" and result["exit_status"] == 3


def test_ab_entries_that_cannot_be_judged(skill_plugin, tmp_path: Path) -> None:
    a = train_runs(tmp_path / "a", range(3))
    one = train_runs(tmp_path / "one", [7])
    longer = train_runs(tmp_path / "longer", range(10, 13), total_steps=800)
    few = compare_folders(a, one, score_ranges=PROBE_RANGE)["entries"]["skill/probe:4"]
    assert few["verdict"] == "error" and "needs >= 2 seeds on each side" in few["error"]
    budget = compare_folders(a, longer, score_ranges=PROBE_RANGE)["entries"]["skill/probe:4"]
    assert budget["verdict"] == "error" and "different training budgets" in budget["error"]
    # A run folder that never finished makes the whole comparison unjudged (exit 3).
    (tmp_path / "a" / "crashed").mkdir()
    (tmp_path / "a" / "crashed" / "metrics.jsonl").write_text("")
    result = compare_folders(a, a, score_ranges=PROBE_RANGE)
    assert result["exit_status"] == 3 and "crashed: no summary.json" in result["problems"][0]


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: (tmp / "nope", tmp / "a"), "nope: no such folder"),
    (lambda tmp: (tmp / "empty", tmp / "a"), "not a nightly result folder (no jobs/*.json) and no run folder"),
    (lambda tmp: (tmp / "other", tmp / "a"), "have no entry in common"),
    (lambda tmp: (tmp / "mixed", tmp / "a"), "differ in config skill"),
    (lambda tmp: (tmp / "a", tmp / "a"), "no score range known for env 'probe:4': pass --score-range"),
])
def test_ab_bad_input_is_one_line_and_exit_2(skill_plugin, tmp_path: Path, capsys, make, message) -> None:
    train_runs(tmp_path / "a", range(2))
    (tmp_path / "empty").mkdir()
    train_runs(tmp_path / "other", range(2), env_id="probe:5")
    train_runs(tmp_path / "mixed" / "x", range(2))
    train_runs(tmp_path / "mixed" / "y", range(5, 7), skill=0.5)
    a, b = make(tmp_path)
    extra = [] if "score range" in message else ["--score-range", "probe:=-1,1"]
    assert main(["compare", str(a), str(b), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlbench: error: ") and message in err and err.count("\n") == 1
