"""The `rlbench check` battery: short runs of any registered trainer on probe environments,
each ending in a verdict (pass / fail / skip) and a reason that names the broken piece.

Everything goes through the public protocol (`rlbench.api`): ``spec.make(config)``,
``advance``, ``policy``, optional ``values``, and the trainer's full run for the evaluation
protocol. Each check isolates one piece of a value-learning trainer (see docs/check.md):

=================  ==========================================================================
probe-1 … probe-5  the five probes: constant fit, observation input, one step of
                   discounting (V(1) and the return), the action argmax, the obs-conditioned
                   argmax — greedy actions and greedy returns, and values when present
discount           probe 3's V(0) = gamma (gamma = 0.5: 1 means the discount is dropped,
                   0.25 that it is applied twice, 0 that the step is not bootstrapped)
timelimit-value    probe:timelimit's V = 1 / (1 - gamma) = 2 (1 when truncation is terminal)
timelimit-choice   probe:timelimit-choice: bootstrapping through a truncation picks "cut"
eval-protocol      the trainer's own full run: evaluation episodes end at the time limit
determinism        the same seed twice: same greedy actions, returns and values
nan-reward         a NaN reward stops training with an error that says so, before an
                   update trains on it (greedy actions and values stay finite)
=================  ==========================================================================

Every check runs once per action kind the trainer supports (discrete probes ``probe:N``,
continuous ones ``probe:N-continuous``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from rlbench.api import (
    ACTION_KINDS,
    Trainer,
    TrainerSpec,
    get_spec,
    has_values,
    is_reproducible,
    run_trainer,
)
from rlbench.envs import make
from rlbench.evaluation import EVAL_SEED_OFFSET, evaluate
from rlbench.faults import parse_faults
from rlbench.types import EvalResult

Verdict = Literal["pass", "fail", "skip"]

CHECK_NAMES: tuple[str, ...] = (
    "probe-1", "probe-2", "probe-3", "probe-4", "probe-5", "discount", "timelimit-value",
    "timelimit-choice", "eval-protocol", "determinism", "nan-reward",
)

PROBE_GAMMA = 0.5
"""gamma for the probe runs (when the config has a gamma field): probe 3's V(0) = 0.5 is
far from the undiscounted 1.0 and the doubly-discounted 0.25; probe:timelimit's V = 2 is
far from the truncation-as-terminal 1."""
CHOICE_GAMMA = 0.9
"""gamma for probe:timelimit-choice: Q(0, cut) = 0.9 against Q(0, stop) = 0.5 (any
gamma > 0.5 prefers "cut"; 0.9 leaves a 0.4 gap, and a truncation stored as terminal
gives Q(0, cut) = 0, a 0.5 gap the other way)."""
VALUE_ATOL = 0.1
"""Values within 0.1 of the known ones: fitting one-number observations to a few values
ends far below it (measured <= 0.01 for dqn/iqn/sac), while every broken piece the checks
name is >= 0.25 away. Soft (SAC-style) values carry gamma·alpha·H(pi) on top at
bootstrapped steps: <= 0.5 · 0.1 · 1 = 0.05 with alpha <= its usual 0.1 start and |H| <= 1
(docs/check.md; sac measures 0.005)."""
TIMELIMIT_VALUE_ATOL = 0.2
"""probe:timelimit's V = 1/(1-gamma) = 2 against 1 (truncation as terminal): the soft
entropy term is amplified by 1/(1-gamma) here, so the tolerance is a fifth of the gap."""
ACTION_MARGIN = 0.5
"""Continuous greedy actions must be past ±0.5 on the right side (optimum ±1; an entropy
bonus keeps a maximum-entropy actor short of the edge: sac measures 0.78-0.92)."""
GREEDY_EPISODES = 10
"""Evaluation episodes of the greedy policy per probe run."""
DETERMINISM_ATOL = 1e-6
"""Same-seed values may differ by float round-off only; a seeding bug moves them by ~1e-2."""
ASYNC_DETERMINISM_ATOL = VALUE_ATOL
"""A trainer that declares itself asynchronous (``reproducible = False``) samples other
transitions each run: its same-seed values, continuous actions and returns need only agree
as well as each agrees with the known values (measured: iqn with 2 actors, -1 vs -0.999);
discrete greedy actions must still be the same."""
EVAL_PROTOCOL_STEPS = 50
"""Training steps of the eval-protocol run: the check is about evaluation, not learning."""
EVAL_PROTOCOL_EPISODES = 3
NON_FINITE = re.compile(r"\bnan\b|non-?finite|not finite|\binf\b|infinit", re.IGNORECASE)
"""An error about a NaN reward must say what is wrong with the number..."""
NAMES_INPUT = re.compile(r"reward|transition", re.IGNORECASE)
"""... and which number: the reward (or the env transition carrying it). An error about a
NaN inside the learner (a distribution parameter, a loss) is the symptom of an update that
already trained on the NaN, not a refusal of it."""

PROBE_OBS: dict[str, tuple[float, ...]] = {
    "1": (0.0,), "2": (-1.0, 1.0), "3": (0.0, 1.0), "4": (0.0,), "5": (-1.0, 1.0),
    "timelimit": (0.0,), "timelimit-choice": (0.0, 1.0),
}
"""The observations each probe is read at (the states its docstring gives values for)."""


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict for one action kind."""

    name: str
    kind: str
    verdict: Verdict
    reason: str
    env: str = ""
    seconds: float = 0.0
    measured: dict[str, Any] = field(default_factory=dict)
    """The numbers the verdict was read from (greedy actions, values, returns per run)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BatteryReport:
    """Every check's result for one trainer."""

    trainer: str
    seed: int
    faults: tuple[str, ...]
    checks: tuple[CheckResult, ...]
    seconds: float

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.verdict == "fail"]

    @property
    def ok(self) -> bool:
        """No check failed (skips are not failures)."""
        return not self.failed

    def counts(self) -> dict[str, int]:
        return {v: sum(c.verdict == v for c in self.checks) for v in ("pass", "fail", "skip")}

    def to_dict(self) -> dict[str, Any]:
        return {"trainer": self.trainer, "seed": self.seed, "faults": list(self.faults),
                "ok": self.ok, "counts": self.counts(), "seconds": self.seconds,
                "checks": [c.to_dict() for c in self.checks]}


@dataclass
class ProbeRun:
    """What one seeded probe run left behind: greedy actions and values at the probe's
    observations, and the greedy policy's evaluation (or the error that stopped it)."""

    env_id: str
    actions: dict[float, np.ndarray] = field(default_factory=dict)
    values: dict[float, np.ndarray] | None = None
    result: EvalResult | None = None
    first_obs: list[float] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    reproducible: bool = True
    """What the trainer declared (`rlbench.api.is_reproducible`)."""

    def measured(self) -> dict[str, Any]:
        """JSON-ready numbers of this run."""
        return {
            "env": self.env_id, "error": self.error, "seconds": round(self.seconds, 3),
            "actions": {f"{o:g}": a.tolist() for o, a in self.actions.items()},
            "values": None if self.values is None else
            {f"{o:g}": v.tolist() for o, v in self.values.items()},
            "returns": None if self.result is None else list(self.result.returns),
        }


def probe_env(probe: str, kind: str) -> str:
    """The env id of `probe` ("3", "timelimit-choice", ...) for an action kind."""
    return f"probe:{probe}" + ("-continuous" if kind == "continuous" else "")


def _obs(value: float) -> np.ndarray:
    return np.array([value], dtype=np.float32)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _close(trainer: Any) -> None:
    close = getattr(trainer, "close", None)
    if callable(close):
        close()


class _FirstObs:
    """Wraps a policy and keeps every observation it was asked about, so the battery knows
    each evaluation episode's first observation (probe 2's return equals it)."""

    def __init__(self, policy: Callable[[np.ndarray], Any]) -> None:
        self.policy, self.seen = policy, []

    def __call__(self, obs: np.ndarray) -> Any:
        self.seen.append(float(np.asarray(obs).reshape(-1)[0]))
        return self.policy(obs)

    def episode_starts(self, lengths: Sequence[int]) -> list[float]:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
        return [self.seen[i] for i in starts]


def _fmt(values: Iterable[float]) -> str:
    return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"


def _diagnose(got: float, candidates: dict[str, float], correct: str) -> str:
    """Name the candidate value `got` is nearest to, when that is not the correct one."""
    nearest = min(candidates, key=lambda k: abs(candidates[k] - got))
    return "" if nearest == correct else f" — closest to {candidates[nearest]:.3g}: {nearest}"


def _value_problems(label: str, got: np.ndarray, want: Sequence[float], atol: float,
                    hint: Callable[[float], str] = lambda v: "") -> list[str]:
    """Problems with one values(obs) report against the known values (shape, finiteness,
    distance), each naming the observation."""
    got = np.asarray(got, dtype=np.float64).reshape(-1)
    want_arr = np.asarray(want, dtype=np.float64)
    if got.shape != want_arr.shape:
        return [f"values({label}) has shape {got.shape}, expected {want_arr.shape}"]
    if not np.isfinite(got).all():
        return [f"values({label}) = {_fmt(got)} is not finite"]
    worst = int(np.argmax(np.abs(got - want_arr)))
    if abs(got[worst] - want_arr[worst]) <= atol:
        return []
    return [f"values({label}) = {_fmt(got)}, expected {_fmt(want_arr)} ± {atol}{hint(got[worst])}"]


class Battery:
    """The checks for one trainer spec, sharing seeded probe runs between checks."""

    def __init__(self, spec: TrainerSpec, seed: int = 0, faults: Iterable[str] = (),
                 kinds: Iterable[str] | None = None,
                 on_result: Callable[[CheckResult], None] | None = None) -> None:
        self.spec, self.seed = spec, seed
        self.faults = tuple(sorted(parse_faults(tuple(faults))))
        self.fields = {f.name for f in dataclasses.fields(spec.config)}
        if self.faults and "faults" not in self.fields:
            raise ValueError(f"{spec.name}'s config {spec.config.__name__} has no faults field; "
                             "faults cannot be switched on through it")
        wanted = set(spec.action_kinds if kinds is None else kinds)
        unknown = wanted - set(spec.action_kinds)
        if unknown:
            raise ValueError(f"{spec.name} supports {sorted(spec.action_kinds)} actions, not "
                             f"{sorted(unknown)}")
        self.kinds = [k for k in ACTION_KINDS if k in wanted]
        self.has_gamma = "gamma" in self.fields
        self.on_result = on_result
        self._runs: dict[tuple[str, str, float | None], ProbeRun] = {}
        self._measured: dict[str, Any] = {}  # what the check running now read its verdict from

    # -- configs and runs ----------------------------------------------------------------------
    def config(self, env_id: str, gamma: float | None = None, **changes: Any) -> Any:
        """The spec's config with its check overrides, this env, seed, check_steps, the
        battery's faults and (when the config has the field) `gamma`."""
        settings: dict[str, Any] = dict(self.spec.check_overrides)
        settings.update(env_id=env_id, seed=self.seed, total_steps=self.spec.check_steps)
        if gamma is not None and self.has_gamma:
            settings["gamma"] = gamma
        if self.faults:
            settings["faults"] = self.faults
        settings.update(changes)
        if "eval_interval" in self.fields:  # the trainer's own evaluation: once, at the end
            settings["eval_interval"] = settings["total_steps"]
        return self.spec.default_config(**settings)

    def _gamma(self, probe: str) -> float:
        return CHOICE_GAMMA if probe == "timelimit-choice" else PROBE_GAMMA

    def probe_run(self, probe: str, kind: str, fresh: bool = False) -> ProbeRun:
        """Train on `probe` for check_steps and read the greedy policy (cached per probe
        and kind unless `fresh`)."""
        gamma = self._gamma(probe)
        key = (probe, kind, gamma)
        if not fresh and key in self._runs:
            self._measured["run"] = self._runs[key].measured()
            return self._runs[key]
        env_id = probe_env(probe, kind)
        run = ProbeRun(env_id)
        start = time.perf_counter()
        trainer: Trainer | None = None
        try:
            trainer = self.spec.make(self.config(env_id, gamma))
            run.reproducible = is_reproducible(trainer)
            trainer.advance(self.spec.check_steps)
            policy = trainer.policy()
            observations = PROBE_OBS[probe]
            run.actions = {o: np.asarray(policy(_obs(o)), np.float64).reshape(-1)
                           for o in observations}
            if has_values(trainer):
                run.values = {o: np.asarray(trainer.values(_obs(o)), np.float64).reshape(-1)
                              for o in observations}
            if probe != "timelimit-choice":  # its time-limited return favours the wrong action
                recorder = _FirstObs(policy)
                run.result = evaluate(recorder, env_id, GREEDY_EPISODES,
                                      seed=self.seed + EVAL_SEED_OFFSET)
                run.first_obs = recorder.episode_starts(run.result.lengths)
        except Exception as exc:  # a crash is the check's verdict, not the battery's end
            run.error = f"training on {env_id} raised {_describe(exc)}"
        finally:
            _close(trainer)
        run.seconds = time.perf_counter() - start
        if not fresh:
            self._runs[key] = run
        self._measured["rerun" if fresh else "run"] = run.measured()
        return run

    # -- the battery ---------------------------------------------------------------------------
    def run(self, only: Iterable[str] | None = None) -> BatteryReport:
        """Run every check (or those named in `only`) for every action kind."""
        names = list(CHECK_NAMES) if only is None else list(only)
        unknown = sorted(set(names) - set(CHECK_NAMES))
        if unknown:
            raise ValueError(f"unknown check(s) {', '.join(unknown)}; checks are: "
                             f"{', '.join(CHECK_NAMES)}")
        start = time.perf_counter()
        results = []
        for kind in self.kinds:
            for name in CHECK_NAMES:
                if name in names:
                    results.append(self._timed(name, kind))
        return BatteryReport(self.spec.name, self.seed, self.faults, tuple(results),
                             time.perf_counter() - start)

    def _timed(self, name: str, kind: str) -> CheckResult:
        start, self._measured = time.perf_counter(), {}
        method = getattr(self, "check_" + name.replace("-", "_"))
        verdict, reason, env = method(kind)
        result = CheckResult(name, kind, verdict, reason, env, time.perf_counter() - start,
                             self._measured)
        if self.on_result is not None:
            self.on_result(result)
        return result

    # -- probes 1-5 ----------------------------------------------------------------------------
    def _probe_check(self, probe: str, kind: str,
                     judge: Callable[[ProbeRun, bool], list[str]]) -> tuple[Verdict, str, str]:
        run = self.probe_run(probe, kind)
        if run.error:
            return "fail", run.error, run.env_id
        problems = judge(run, kind == "continuous")
        returns = run.result.returns if run.result else ()
        if problems:
            return "fail", "; ".join(problems), run.env_id
        said = f"greedy returns {_fmt(sorted(set(returns)))}"
        if run.values is None:
            said += "; values not checked (the trainer has no values())"
        return "pass", said, run.env_id

    def check_probe_1(self, kind: str) -> tuple[Verdict, str, str]:
        """Constant reward: every return is 1 and V(0) = 1 (the value fit at all)."""
        def judge(run: ProbeRun, continuous: bool) -> list[str]:
            problems = _returns_equal(run, [1.0] * GREEDY_EPISODES)
            if run.values is not None:
                problems += _value_problems("0", run.values[0.0], [1.0], VALUE_ATOL)
            return problems
        return self._probe_check("1", kind, judge)

    def check_probe_2(self, kind: str) -> tuple[Verdict, str, str]:
        """Reward = observation: V(o) = o (the value reads its input)."""
        def judge(run: ProbeRun, continuous: bool) -> list[str]:
            problems = _returns_equal(run, run.first_obs)
            if run.values is not None:
                for o in (-1.0, 1.0):
                    problems += _value_problems(
                        f"{o:+g}", run.values[o], [o], VALUE_ATOL,
                        lambda v: " — the value ignores the observation" if abs(v) < 0.5 else "")
            return problems
        return self._probe_check("2", kind, judge)

    def check_probe_3(self, kind: str) -> tuple[Verdict, str, str]:
        """Two steps, reward 0 then 1: every return is 1 in 2 steps, and V(1) = 1."""
        def judge(run: ProbeRun, continuous: bool) -> list[str]:
            problems = _returns_equal(run, [1.0] * GREEDY_EPISODES)
            if run.result and any(n != 2 for n in run.result.lengths):
                problems.append(f"episode lengths {list(run.result.lengths)}, expected 2 each")
            if run.values is not None:
                problems += _value_problems("1", run.values[1.0], _n(run, kind, 1.0), VALUE_ATOL)
            return problems
        return self._probe_check("3", kind, judge)

    def check_probe_4(self, kind: str) -> tuple[Verdict, str, str]:
        """Reward depends on the action: greedy action 1 (discrete) / a > 0.5 (continuous)."""
        def judge(run: ProbeRun, continuous: bool) -> list[str]:
            a = run.actions[0.0]
            if continuous:
                problems = [] if a[0] > ACTION_MARGIN else [
                    f"greedy action {a[0]:.3g} at obs 0, expected > {ACTION_MARGIN} "
                    "(reward = a: the actor does not climb the critic)"]
                problems += _returns_at_least(run, ACTION_MARGIN)
                want = [float(np.clip(a[0], -1, 1))]
            else:
                problems = [] if int(a[0]) == 1 else [
                    f"greedy action {int(a[0])} at obs 0, expected 1 (reward +1 vs -1): "
                    "the argmax is wrong"]
                problems += _returns_equal(run, [1.0] * GREEDY_EPISODES)
                want = [-1.0, 1.0]
            if run.values is not None:
                problems += _value_problems("0", run.values[0.0], want, VALUE_ATOL)
            return problems
        return self._probe_check("4", kind, judge)

    def check_probe_5(self, kind: str) -> tuple[Verdict, str, str]:
        """Reward depends on obs and action: the greedy action follows the observation."""
        def judge(run: ProbeRun, continuous: bool) -> list[str]:
            problems: list[str] = []
            for o in (-1.0, 1.0):
                a = run.actions[o]
                if continuous:
                    if not a[0] * o > ACTION_MARGIN:
                        problems.append(f"greedy action {a[0]:.3g} at obs {o:+g}, expected "
                                        f"{'>' if o > 0 else '<'} {o * ACTION_MARGIN:+g} "
                                        "(the action must follow the observation)")
                    want = [float(np.clip(a[0], -1, 1)) * o]
                else:
                    best = int(o > 0)
                    if int(a[0]) != best:
                        problems.append(f"greedy action {int(a[0])} at obs {o:+g}, expected "
                                        f"{best} (the action must follow the observation)")
                    want = [-o, o]
                if run.values is not None:
                    problems += _value_problems(f"{o:+g}", run.values[o], want, VALUE_ATOL)
            if continuous:
                problems += _returns_at_least(run, ACTION_MARGIN)
            else:
                problems += _returns_equal(run, [1.0] * GREEDY_EPISODES)
            return problems
        return self._probe_check("5", kind, judge)

    # -- discounting and time limits -----------------------------------------------------------
    def _value_skip(self) -> str | None:
        if not self.has_gamma:
            return (f"{self.spec.config.__name__} has no gamma field: the gamma-dependent "
                    "value cannot be set to a known discount")
        return None

    def check_discount(self, kind: str) -> tuple[Verdict, str, str]:
        """Probe 3's V(0) = gamma: one step of discounting and bootstrapping."""
        env_id = probe_env("3", kind)
        if (why := self._value_skip()) is not None:
            return "skip", why, env_id
        run = self.probe_run("3", kind)
        if run.error:
            return "fail", run.error, env_id
        if run.values is None:
            return "skip", "the trainer has no values()", env_id
        g = PROBE_GAMMA
        candidates = {"correct": g, "the discount is dropped": 1.0,
                      "the discount is applied twice": g * g,
                      "the next state is not bootstrapped (treated as terminal, or a target "
                      "network that never learns)": 0.0}
        problems = _value_problems("0", run.values[0.0], _n(run, kind, g), VALUE_ATOL,
                                   lambda v: _diagnose(v, candidates, "correct"))
        if problems:
            return "fail", "; ".join(problems), env_id
        return "pass", f"V(0) = {_fmt(run.values[0.0])} ≈ gamma = {g}", env_id

    def check_timelimit_value(self, kind: str) -> tuple[Verdict, str, str]:
        """probe:timelimit's V = 1/(1-gamma): the value bootstraps through truncations."""
        env_id = probe_env("timelimit", kind)
        if (why := self._value_skip()) is not None:
            return "skip", why, env_id
        run = self.probe_run("timelimit", kind)
        if run.error:
            return "fail", run.error, env_id
        if run.values is None:
            return "skip", "the trainer has no values()", env_id
        want = 1.0 / (1.0 - PROBE_GAMMA)
        candidates = {"correct": want, "time-limit truncation treated as terminal": 1.0}
        problems = _value_problems("0", run.values[0.0], _n(run, kind, want),
                                   TIMELIMIT_VALUE_ATOL,
                                   lambda v: _diagnose(v, candidates, "correct"))
        if problems:
            return "fail", "; ".join(problems), env_id
        return "pass", f"V(0) = {_fmt(run.values[0.0])} ≈ 1/(1-gamma) = {want:g}", env_id

    def check_timelimit_choice(self, kind: str) -> tuple[Verdict, str, str]:
        """probe:timelimit-choice: bootstrapping through the cut makes "cut" the greedy action."""
        run = self.probe_run("timelimit-choice", kind)
        if run.error:
            return "fail", run.error, run.env_id
        g = CHOICE_GAMMA
        a = run.actions[0.0][0]
        problems = []
        if kind == "continuous":
            if not a < -ACTION_MARGIN:
                problems.append(f"greedy action {a:.3g} at obs 0, expected < {-ACTION_MARGIN} "
                                "(towards the time-limit cut)" + (
                                    ": the truncation is treated as terminal" if a > 0 else ""))
            want0 = [g * (1 - a) / 2 + 0.5 * (1 + a) / 2]
        else:
            if int(a) != 0:
                problems.append(f"greedy action {int(a)} ('stop', 0.5) at obs 0, expected 0 "
                                f"('cut', gamma·V(1) = {g}): the truncation is treated as "
                                "terminal")
            want0 = [g, 0.5]
        if run.values is not None:
            problems += _value_problems("0", run.values[0.0], want0, VALUE_ATOL,
                                        lambda v: " — Q(0, cut) near 0: truncation treated as "
                                        "terminal" if abs(v) < 0.25 else "")
            problems += _value_problems("1", run.values[1.0], _n(run, kind, 1.0), VALUE_ATOL)
        note = "" if self.has_gamma else (
            f"; {self.spec.config.__name__} has no gamma field: ran with the trainer's own "
            "discount (the probe needs gamma > 0.5)")
        if problems:
            return "fail", "; ".join(problems) + note, run.env_id
        return "pass", f"greedy action {a:.3g} at obs 0 (the cut){note}", run.env_id

    # -- the evaluation protocol ---------------------------------------------------------------
    def check_eval_protocol(self, kind: str) -> tuple[Verdict, str, str]:
        """The trainer's full run on probe:timelimit-eval: every evaluation episode ends at
        the time limit (length and return 10), none runs on to the termination at 20."""
        env_id = probe_env("timelimit-eval", kind)
        limit = int(make(env_id).unwrapped.time_limit)
        changes: dict[str, Any] = {"total_steps": EVAL_PROTOCOL_STEPS}
        if "eval_episodes" in self.fields:
            changes["eval_episodes"] = EVAL_PROTOCOL_EPISODES
        config = self.config(env_id, None, **changes)
        problems: list[str] = []
        try:
            with tempfile.TemporaryDirectory() as tmp:
                summary = _train_full(self.spec, config, tmp)
                path = Path(tmp, "summary.json")
                if path.exists():
                    summary = json.loads(path.read_text())
                else:
                    problems.append("the run wrote no summary.json")
        except Exception as exc:
            return "fail", f"the full run on {env_id} raised {_describe(exc)}", env_id
        history = (summary or {}).get("eval_history") or []
        self._measured["eval_history"] = [
            {k: e.get(k) for k in ("step", "completed", "episodes", "lengths", "returns")}
            for e in history]
        if not history:
            return "fail", "the summary has no eval_history entries", env_id
        for entry in history:
            missing = {"completed", "episodes", "returns", "lengths"} - set(entry)
            if missing:
                problems.append(f"eval_history entry lacks {', '.join(sorted(missing))}")
                break
            step = entry.get("step", "?")
            if entry["completed"] != entry["episodes"]:
                problems.append(f"step {step}: {entry['completed']}/{entry['episodes']} eval "
                                "episodes completed (time-limited episodes must complete)")
            if any(n != limit for n in entry["lengths"]) or any(
                    not math.isclose(r, limit) for r in entry["returns"]):
                problems.append(
                    f"step {step}: eval episode lengths {entry['lengths']}, returns "
                    f"{_fmt(entry['returns'])}; the env truncates every episode at step {limit} "
                    f"with return {limit}: evaluation does not end episodes at truncation")
        final = (summary or {}).get("final_eval_return")
        if final is None or not math.isclose(float(final), limit):
            problems.append(f"final_eval_return {final}, expected {limit}")
        if problems:
            return "fail", "; ".join(dict.fromkeys(problems)), env_id
        return "pass", (f"{len(history)} evaluation(s): every episode completed at the time "
                        f"limit, length and return {limit}"), env_id

    # -- determinism ---------------------------------------------------------------------------
    def check_determinism(self, kind: str) -> tuple[Verdict, str, str]:
        """Probe 5 twice with the same seed: same greedy actions, returns and values."""
        first = self.probe_run("5", kind)
        second = self.probe_run("5", kind, fresh=True)
        env_id = first.env_id
        if first.error or second.error:
            return "fail", first.error or second.error or "", env_id
        exact = first.reproducible and second.reproducible
        atol = DETERMINISM_ATOL if exact else ASYNC_DETERMINISM_ATOL
        problems = []
        for o in PROBE_OBS["5"]:
            a, b = first.actions[o], second.actions[o]
            if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=atol):
                problems.append(f"greedy action at obs {o:+g}: {_fmt(a)} then {_fmt(b)}")
            if first.values is not None and second.values is not None:
                va, vb = first.values[o], second.values[o]
                if va.shape != vb.shape or not np.allclose(va, vb, rtol=0, atol=atol):
                    problems.append(f"values({o:+g}): {_fmt(va)} then {_fmt(vb)}")
        ra = first.result.returns if first.result else ()
        rb = second.result.returns if second.result else ()
        # An asynchronous trainer's continuous actions may differ within the tolerance, and
        # probe 5's return is action × observation (|obs| <= 1): the same bound holds for it.
        if ra != rb and (exact or len(ra) != len(rb)
                         or not np.allclose(ra, rb, rtol=0, atol=ASYNC_DETERMINISM_ATOL)):
            problems.append(f"greedy returns {_fmt(ra)} then {_fmt(rb)}")
        if problems:
            return "fail", ("same seed, different results: " + "; ".join(problems)
                            + " (an unseeded RNG, or a nondeterministic kernel)"), env_id
        said = "same greedy actions and returns" + (
            f", values equal within {atol:g}" if first.values is not None else "")
        if not exact:
            said += (" (the trainer declares itself asynchronous, reproducible = False: "
                     "values, continuous actions and returns compared within the value "
                     "tolerance)")
        return "pass", said, env_id

    # -- NaN handling --------------------------------------------------------------------------
    def check_nan_reward(self, kind: str) -> tuple[Verdict, str, str]:
        """probe:nan-reward: training stops with an error that names the non-finite reward,
        and the learner it leaves behind is still finite (no update consumed the NaN)."""
        env_id = probe_env("nan-reward", kind)
        nan_after = int(make(env_id).unwrapped.nan_after)
        trainer: Trainer | None = None
        try:
            trainer = self.spec.make(self.config(env_id, PROBE_GAMMA))
            trainer.advance(self.spec.check_steps)
        except Exception as exc:
            said = _describe(exc)
            # An error that comes only after an update trained on the NaN (a NaN loss
            # tripping some later validation) has already corrupted the learner: refusing
            # the reward means stopping before the NaN reaches the parameters.
            reached, judged, read = _nan_in_learner(trainer, kind, exc)
            self._measured["after_error"] = read
            text = f"{type(exc).__name__}: {exc}"
            if not (NON_FINITE.search(text) and NAMES_INPUT.search(text)):
                return "fail", (f"stopped with {said}, which does not say the reward is NaN / "
                                "non-finite" + (f"; the NaN had reached the learner: "
                                                f"{'; '.join(reached)}" if reached else "")), env_id
            if reached:
                return "fail", (f"stopped with {said}, but only after the NaN reached the "
                                f"learner: {'; '.join(reached)} (the reward must be refused "
                                "before an update consumes it)"), env_id
            if judged:
                return "pass", f"stopped with {said}; {' and '.join(judged)} still finite", env_id
            return "pass", (f"stopped with {said}; the learner's state was not checked after "
                            "the error (" + ("it could not be read" if has_values(trainer)
                                             or kind == "continuous" else
                                             "discrete actions and no values()") + ")"), env_id
        finally:
            _close(trainer)
        steps = getattr(trainer, "env_steps", "?")
        return "fail", (f"trained {steps} env steps with NaN rewards from step {nan_after + 1} "
                        "on and raised no error (NaN rewards are trained on silently)"), env_id


# -- helpers the checks share ------------------------------------------------------------------
def _nan_in_learner(trainer: Trainer | None, kind: str, error: BaseException
                    ) -> tuple[list[str], list[str], dict[str, Any]]:
    """After training stopped with `error`: (problems, judged parts, what was read). Reads
    the greedy action (judged for continuous actions: a discrete argmax over NaN values is
    still a finite index) and `values` at the probe's observation through the protocol. A
    read that raises naming NaN is a problem too (the weights are NaN), unless it repeats
    `error` (a trainer that re-raises its failure is unreadable, not broken); a part that
    cannot be read for another reason is left out."""
    problems: list[str] = []
    judged: list[str] = []
    read: dict[str, Any] = {}
    if trainer is None:
        return problems, judged, read
    obs = _obs(PROBE_OBS["1"][0])

    def read_part(name: str, get: Callable[[], Any], judge: bool) -> None:
        try:
            got = np.asarray(get(), np.float64).reshape(-1)
        except Exception as exc:  # noqa: BLE001 - a NaN inside shows up as the error's text
            if NON_FINITE.search(str(exc)) and str(exc) != str(error):
                problems.append(f"reading the {name} raised {_describe(exc)}")
            return
        read[name] = got.tolist()
        if not judge:
            return
        judged.append(name)
        if not np.isfinite(got).all():
            problems.append(f"{name} at obs 0 = {_fmt(got)}")

    read_part("greedy actions", lambda: trainer.policy()(obs), kind == "continuous")
    if has_values(trainer):
        read_part("values", lambda: trainer.values(obs), True)
    return problems, judged, read


def _n(run: ProbeRun, kind: str, value: float) -> list[float]:
    """`value` once per entry of values(obs): discrete values() has one per action of the
    probe, continuous exactly one (Q at the greedy action)."""
    if kind == "continuous":
        return [value]
    return [value] * int(make(run.env_id).action_space.n)


def _returns_equal(run: ProbeRun, want: Sequence[float]) -> list[str]:
    if run.result is None:
        return []
    got = run.result.returns
    if run.result.completed != run.result.episodes:
        return [f"{run.result.completed}/{run.result.episodes} greedy episodes completed"]
    if len(got) != len(want) or not np.allclose(got, want, rtol=0, atol=1e-9):
        return [f"greedy returns {_fmt(got)}, expected {_fmt(want)}"]
    return []


def _returns_at_least(run: ProbeRun, floor: float) -> list[str]:
    if run.result is None or min(run.result.returns) >= floor:
        return []
    return [f"greedy returns {_fmt(run.result.returns)}, expected each >= {floor}"]


def _train_full(spec: TrainerSpec, config: Any, out_dir: str) -> dict[str, Any]:
    """What `rlbench.api.train` does for `spec` (the trainer's own run, or the generic
    `run_trainer`), without requiring the spec to be registered under its name."""
    if spec.run is not None:
        return spec.run(config, out_dir=out_dir, progress=False)
    return run_trainer(spec, config, out_dir=out_dir)


def run_battery(trainer: str | TrainerSpec, seed: int = 0, faults: Iterable[str] = (),
                only: Iterable[str] | None = None, kinds: Iterable[str] | None = None,
                on_result: Callable[[CheckResult], None] | None = None) -> BatteryReport:
    """Run the check battery on a registered trainer name (or a spec); see the module doc."""
    spec = get_spec(trainer) if isinstance(trainer, str) else trainer
    return Battery(spec, seed, faults, kinds, on_result).run(only)
