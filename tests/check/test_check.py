"""The check battery (`rlbench check`) on a tiny hand-written trainer: a tabular Q-learner
that implements the `rlbench.api` protocol for real (real probe envs, real evaluation, the
generic `run_trainer`). The correct learner passes every check; each deliberately broken
variant fails exactly the check that isolates its bug, with a reason naming the piece.

Tabular Q-learning with uniform-random behaviour and sample-average steps converges on
these probes to the known values up to a few early bootstrap zeros (< 0.01 at ~1,000 steps),
so the battery's 0.1 tolerances leave a wide margin; every run is seeded.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from rlbench import api
from rlbench.check import CHECK_NAMES, Battery, run_battery
from rlbench.cli import main
from rlbench.envs import is_discrete, make
from rlbench.envs.probes import NaNReward, TimeLimitChoice, TimeLimitEval

BUGS = ("", "truncation-terminal", "no-discount", "unseeded", "ignores-nan", "nan-late",
        "value-jitter", "nan-unnamed", "opaque-after-error")
GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)  # the actions a tabular learner tries on a Box space


@dataclasses.dataclass(frozen=True)
class TabularConfig:
    env_id: str = "probe:1"
    seed: int = 0
    total_steps: int = 1_000
    gamma: float = 0.99
    learning_rate: float | None = None
    """None: sample averages (1/visits); a number: that constant step size."""
    eval_interval: int = 1_000
    eval_episodes: int = 2
    faults: tuple[str, ...] = ()
    bug: str = ""
    """One of BUGS: the piece this learner gets wrong on purpose."""


class TabularQ:
    """Q-learning over a table keyed by the (one-number) observation, uniform-random
    behaviour, greedy evaluation; Box actions are tried on GRID."""

    def __init__(self, config: TabularConfig) -> None:
        assert config.bug in BUGS, config.bug
        self.config = config
        self.env = make(config.env_id, seed=config.seed)
        self.continuous = not is_discrete(self.env)
        self.n = len(GRID) if self.continuous else int(self.env.action_space.n)
        self.q: dict[float, np.ndarray] = defaultdict(lambda: np.zeros(self.n))
        self.visits: dict[float, np.ndarray] = defaultdict(lambda: np.zeros(self.n))
        # Its own stream: seeded with the bare seed it would replay the env's reset draws
        # (gymnasium seeds np_random the same way) and act in lockstep with the observation.
        # The "unseeded" bug: exploration draws from an RNG seeded by the OS.
        self.rng = np.random.default_rng(None if config.bug == "unseeded" else [config.seed, 1])
        self.env_steps = 0
        self.failure: Exception | None = None
        self._obs, _ = self.env.reset()

    def _key(self, obs: np.ndarray) -> float:
        return round(float(np.asarray(obs).reshape(-1)[0]), 3)

    def _env_action(self, i: int) -> Any:
        return np.array([GRID[i]], np.float32) if self.continuous else i

    def advance(self, steps: int) -> None:
        cfg = self.config
        gamma = 1.0 if cfg.bug == "no-discount" else cfg.gamma
        for _ in range(steps):
            i = int(self.rng.integers(self.n))
            next_obs, reward, terminated, truncated, _ = self.env.step(self._env_action(i))
            late = cfg.bug == "nan-late" and not math.isfinite(reward)
            if not math.isfinite(reward) and cfg.bug == "nan-unnamed":
                raise ValueError("loss is nan")  # says NaN, not which number
            if not math.isfinite(reward) and cfg.bug not in ("ignores-nan", "nan-late"):
                self.failure = ValueError(f"non-finite reward {reward} at step {self.env_steps}")
                raise self.failure
            stop = terminated or (truncated and cfg.bug == "truncation-terminal")
            target = reward + (0.0 if stop else gamma * self.q[self._key(next_obs)].max())
            key = self._key(self._obs)
            self.visits[key][i] += 1
            step = cfg.learning_rate or 1.0 / self.visits[key][i]
            self.q[key][i] += step * (target - self.q[key][i])
            self.env_steps += 1
            self._obs = self.env.reset()[0] if terminated or truncated else next_obs
            if late:  # the "nan-late" bug: the NaN is refused only after it was learned from
                raise ValueError(f"non-finite reward {reward} at step {self.env_steps}")

    def _opaque(self) -> None:
        """The "opaque-after-error" learner re-raises its failure on every read."""
        if self.config.bug == "opaque-after-error" and self.failure is not None:
            raise ValueError(str(self.failure))

    def policy(self) -> Callable[[np.ndarray], Any]:
        self._opaque()
        return lambda obs: self._env_action(int(np.argmax(self.q[self._key(obs)])))

    @property
    def reproducible(self) -> bool:
        """The "value-jitter" learner declares itself asynchronous (see `values`)."""
        return self.config.bug != "value-jitter"

    def values(self, obs: np.ndarray) -> np.ndarray:
        self._opaque()
        q = self.q[self._key(obs)]
        q = np.array([q.max()]) if self.continuous else q.copy()
        if self.config.bug == "value-jitter":  # what an unseeded process schedule does
            q += np.random.default_rng().normal(0.0, 1e-3, q.shape)
        return q

    def metrics(self) -> dict[str, float]:
        return {"table_rows": float(len(self.q))}

    def close(self) -> None:
        self.env.close()


def _spec(bug: str = "", **overrides: Any) -> api.TrainerSpec:
    return api.TrainerSpec(f"tabular{'-' + bug if bug else ''}", {"discrete", "continuous"},
                           TabularConfig, TabularQ, check_overrides={"bug": bug, **overrides},
                           check_steps=1_000)


def _verdicts(report) -> dict[tuple[str, str], tuple[str, str]]:
    return {(c.name, c.kind): (c.verdict, c.reason) for c in report.checks}


@pytest.fixture(scope="module")
def clean_report():
    return run_battery(_spec(), seed=0)


def test_correct_tabular_learner_passes_every_check_in_both_kinds(clean_report) -> None:
    verdicts = _verdicts(clean_report)
    assert set(verdicts) == {(n, k) for n in CHECK_NAMES for k in ("discrete", "continuous")}
    broken = {key: v for key, v in verdicts.items() if v[0] != "pass"}
    assert not broken, f"a correct learner should pass everything: {broken}"
    assert clean_report.ok and clean_report.counts() == {"pass": 22, "fail": 0, "skip": 0}


def _failures(report) -> dict[tuple[str, str], str]:
    return {(c.name, c.kind): c.reason for c in report.failed}


def test_truncation_stored_as_terminal_fails_exactly_the_time_limit_checks() -> None:
    report = run_battery(_spec("truncation-terminal"))
    failed = _failures(report)
    assert set(failed) == {(n, k) for n in ("timelimit-value", "timelimit-choice")
                           for k in ("discrete", "continuous")}, failed
    assert "truncation treated as terminal" in failed["timelimit-value", "discrete"]
    assert "truncation is treated as terminal" in failed["timelimit-choice", "continuous"]


def test_dropped_discount_fails_the_discount_check_naming_it() -> None:
    report = run_battery(_spec("no-discount"), only=["discount", "probe-3"], kinds=["discrete"])
    verdicts = _verdicts(report)
    assert verdicts["probe-3", "discrete"][0] == "pass"  # V(1) and the return don't see gamma
    verdict, reason = verdicts["discount", "discrete"]
    assert verdict == "fail" and "the discount is dropped" in reason, reason


def test_unseeded_exploration_fails_determinism() -> None:
    # A constant small step keeps the values short of convergence, so the visit counts the
    # unseeded RNG draws show up in them (sample averages would converge to the same numbers).
    report = run_battery(_spec("unseeded", learning_rate=0.01), only=["determinism"],
                         kinds=["discrete"])
    (check,) = report.checks
    assert check.verdict == "fail" and "same seed, different results" in check.reason, check


def test_silently_trained_nan_reward_fails_and_a_clear_error_passes(clean_report) -> None:
    report = run_battery(_spec("ignores-nan"), only=["nan-reward"], kinds=["continuous"])
    (check,) = report.checks
    assert check.verdict == "fail" and "raised no error" in check.reason, check
    assert _verdicts(clean_report)["nan-reward", "continuous"][0] == "pass"


def test_nan_refused_only_after_it_was_learned_from_fails() -> None:
    report = run_battery(_spec("nan-late"), only=["nan-reward"])
    for check in report.checks:  # the error names NaN, but values(0) is already NaN
        assert check.verdict == "fail", check
        assert "only after the NaN reached the learner" in check.reason, check.reason
        assert "values at obs 0 = [nan" in check.reason, check.reason


def test_nan_error_must_name_the_reward() -> None:
    (check,) = run_battery(_spec("nan-unnamed"), only=["nan-reward"], kinds=["discrete"]).checks
    assert check.verdict == "fail", check
    assert "does not say the reward is NaN" in check.reason, check.reason


def test_trainer_that_re_raises_its_failure_on_reads_is_unreadable_not_broken() -> None:
    (check,) = run_battery(_spec("opaque-after-error"), only=["nan-reward"],
                           kinds=["continuous"]).checks
    assert check.verdict == "pass", check
    assert "not checked after the error (it could not be read)" in check.reason, check.reason


def test_clean_nan_error_leaves_a_finite_learner(clean_report) -> None:
    for kind in ("discrete", "continuous"):
        (check,) = [c for c in clean_report.checks if (c.name, c.kind) == ("nan-reward", kind)]
        assert "values still finite" in check.reason, check.reason
        assert np.isfinite(check.measured["after_error"]["values"]).all(), check.measured


def test_declared_asynchronous_trainer_is_held_to_equal_greedy_behaviour() -> None:
    # Same learner, values jittered by 1e-3 between runs: fails the exact check when the
    # trainer claims reproducibility, passes when it declares reproducible = False.
    jitter = run_battery(_spec("value-jitter"), only=["determinism"], kinds=["discrete"])
    (check,) = jitter.checks
    assert check.verdict == "pass" and "reproducible = False" in check.reason, check.reason

    class Claims(TabularQ):
        reproducible = True

    spec = dataclasses.replace(_spec("value-jitter"), make=Claims)
    (check,) = run_battery(spec, only=["determinism"], kinds=["discrete"]).checks
    assert check.verdict == "fail" and "values(" in check.reason, check.reason


def test_eval_truncation_ignored_fault_fails_the_eval_protocol_check() -> None:
    report = run_battery(_spec(), faults=["eval-truncation-ignored"], only=["eval-protocol"])
    for check in report.checks:
        assert check.verdict == "fail", check
        assert "does not end episodes at truncation" in check.reason, check.reason


@dataclasses.dataclass(frozen=True)
class NoGammaConfig:
    env_id: str = "probe:1"
    seed: int = 0
    total_steps: int = 1_000


class NoValues(TabularQ):
    """The tabular learner with a fixed internal gamma, no config gamma and no values()."""

    values = None  # type: ignore[assignment]

    def __init__(self, config: NoGammaConfig) -> None:
        super().__init__(TabularConfig(config.env_id, config.seed, config.total_steps, gamma=0.9))


def test_missing_gamma_field_and_values_skip_with_the_reason() -> None:
    spec = api.TrainerSpec("novalues", {"discrete"}, NoGammaConfig, NoValues)
    verdicts = _verdicts(Battery(spec).run(["probe-3", "discount", "timelimit-value",
                                            "timelimit-choice"]))
    assert verdicts["probe-3", "discrete"] == (
        "pass", "greedy returns [1]; values not checked (the trainer has no values())")
    for name in ("discount", "timelimit-value"):
        verdict, reason = verdicts[name, "discrete"]
        assert verdict == "skip" and "has no gamma field" in reason, (name, reason)
    verdict, reason = verdicts["timelimit-choice", "discrete"]
    assert verdict == "pass" and "trainer's own discount" in reason, reason


def test_bad_battery_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown check.*nope"):
        run_battery(_spec(), only=["nope"])
    with pytest.raises(ValueError, match="supports.*not.*pixels"):
        Battery(_spec(), kinds=["pixels"])
    with pytest.raises(ValueError, match="no faults field"):
        Battery(api.TrainerSpec("x", {"discrete"}, NoGammaConfig, NoValues),
                faults=["eval-truncation-ignored"])


def test_cli_check_json_and_exit_status(monkeypatch, capsys) -> None:
    monkeypatch.setattr(api, "_loaded", {})
    api.register(_spec())
    api.register(_spec("truncation-terminal"))
    args = ["check", "--json", "--quiet", "--kind", "discrete"]
    assert main([*args, "tabular", "--only", "timelimit-choice"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["checks"][0]["verdict"] == "pass"
    assert main([*args, "tabular-truncation-terminal", "--only", "timelimit-choice"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["counts"]["fail"] == 1 and "terminal" in out["checks"][0]["reason"]
    assert main(["check", "tabular", "--quiet", "--only", "probe-1", "--kind", "continuous"]) == 0
    text = capsys.readouterr().out
    assert "probe-1" in text and "tabular: 1 pass, 0 fail, 0 skip" in text


# -- the probes the battery adds -----------------------------------------------------------------
def test_timelimit_choice_probe_dynamics_match_its_docstring() -> None:
    env = TimeLimitChoice()
    env.reset(seed=0)
    env._obs = 0.0
    assert env.step(0)[:4] == (np.float32([1.0]), 0.0, False, True)  # cut: truncated into obs 1
    assert env.step(1)[1:4] == (1.0, True, False)  # obs 1: reward 1, terminal
    env._obs = 0.0
    assert env.step(1)[1:4] == (0.5, True, False)  # stop
    starts = [TimeLimitChoice().reset(seed=s)[0][0] for s in range(200)]
    assert 0.35 < np.mean(starts) < 0.65  # obs 0 or 1, half the time each
    cont = TimeLimitChoice(continuous=True)
    cont.reset(seed=0)
    cuts = []
    for _ in range(2_000):  # P(cut | a = 0.5) = (1 - a) / 2 = 0.25
        cont._obs = 0.0
        cuts.append(cont.step(np.float32([0.5]))[3])
    assert 0.2 < np.mean(cuts) < 0.3


def test_timelimit_eval_probe_truncates_at_10_and_terminates_at_20() -> None:
    env = TimeLimitEval()
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(20)]
    assert flags[8] == (False, False) and flags[9] == (False, True)
    assert flags[18] == (False, True) and flags[19] == (True, False)


def test_nan_reward_probe_turns_nan_after_20_steps() -> None:
    env = NaNReward(continuous=True)
    env.reset(seed=0)
    rewards = [env.step(np.float32([0.0]))[1] for _ in range(21)]
    assert rewards[:20] == [1.0] * 20 and math.isnan(rewards[20])
