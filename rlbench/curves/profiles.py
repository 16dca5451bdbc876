"""Nightly suites: which (algo, env, config) entries run, on which seeds, with which rule.

Seeds: the nightly run and the reference use *disjoint* seeds. Trainers are deterministic
per seed, so comparing the same seeds would make an unchanged trainer reproduce the
reference exactly and the rule would never see seed noise; disjoint seeds make every
nightly run a genuine same-code rerun (A/A) when nothing changed, which is what the
rule's false-alarm rate is calibrated for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlbench.curves.compare import Rule
from rlbench.curves.records import Job

SCORE_RANGES: dict[str, tuple[float, float]] = {
    "CartPole-v1": (0.0, 500.0),  # +1 per step, 500-step time limit
    "dmc:": (0.0, 1000.0),  # every dm_control task: reward in [0, 1], 1000 steps
}


def score_range(env_id: str) -> tuple[float, float]:
    """(worst, best) episode return used to normalise `env_id`'s returns to [0, 1]."""
    if env_id in SCORE_RANGES:
        return SCORE_RANGES[env_id]
    for prefix, rng in SCORE_RANGES.items():
        if prefix.endswith(":") and env_id.startswith(prefix):
            return rng
    raise ValueError(
        f"no score range known for env {env_id!r}; known: {', '.join(SCORE_RANGES)} "
        "(pass score_range= to Entry)"
    )


@dataclass(frozen=True)
class Entry:
    """One (algo, env, config) line of a suite; `name` is how reports and references key it."""

    algo: str
    env: str
    changes: tuple[tuple[str, Any], ...] = ()
    """Config overrides besides env_id/seed (budget, eval schedule, actors, faults ...)."""
    variant: str = ""
    """Shown in the name when one algo appears twice, e.g. "actors=2"."""
    score_range: tuple[float, float] | None = None
    """Normalisation range; None → looked up from the env id."""
    timeout_s: float = 1800.0
    """A job running longer is killed and reported as an error."""

    @property
    def name(self) -> str:
        algo = f"{self.algo}[{self.variant}]" if self.variant else self.algo
        return f"{algo}/{self.env}"

    @property
    def range(self) -> tuple[float, float]:
        return self.score_range or score_range(self.env)

    def job(self, seed: int) -> Job:
        return Job(self.name, self.algo, seed, (("env_id", self.env), *self.changes), self.timeout_s)

    def with_fault(self, fault: str) -> Entry:
        changes = dict(self.changes) | {"faults": (fault,)}
        variant = f"{self.variant}, " if self.variant else ""
        return Entry(self.algo, self.env, tuple(changes.items()), f"{variant}fault={fault}",
                     self.score_range, self.timeout_s)


@dataclass(frozen=True)
class Probe:
    """A known fault switched on in one entry: the run the rule must flag (its power)."""

    entry: Entry
    fault: str

    @property
    def faulty(self) -> Entry:
        return self.entry.with_fault(self.fault)


@dataclass(frozen=True)
class Profile:
    name: str
    entries: tuple[Entry, ...]
    seeds: tuple[int, ...]
    """Seeds of the nightly (candidate) runs."""
    reference_seeds: tuple[int, ...]
    """Seeds of the reference runs (`--write-reference`): disjoint from `seeds`, and more
    of them, so A/A calibration can split them and the reference band is tight."""
    probes: tuple[Probe, ...] = ()
    """Faulty runs made with `--write-reference` to measure the rule's power."""
    rule: Rule = field(default_factory=Rule)
    description: str = ""

    def __post_init__(self) -> None:
        overlap = set(self.seeds) & set(self.reference_seeds)
        if overlap:
            raise ValueError(f"profile {self.name}: nightly and reference seeds overlap: {overlap}")
        names = [e.name for e in self.entries]
        if len(set(names)) != len(names):
            raise ValueError(f"profile {self.name}: duplicate entry names {names}")

    def jobs(self) -> list[Job]:
        """The nightly run: every entry × every nightly seed."""
        return [e.job(s) for e in self.entries for s in self.seeds]

    def reference_jobs(self) -> list[Job]:
        """Reference + calibration runs: entries × reference seeds, probes × nightly seeds."""
        return [e.job(s) for e in self.entries for s in self.reference_seeds] + [
            p.faulty.job(s) for p in self.probes for s in self.seeds
        ]

    def entry(self, name: str) -> Entry:
        for e in (*self.entries, *(p.faulty for p in self.probes)):
            if e.name == name:
                return e
        raise ValueError(f"profile {self.name} has no entry {name!r}")


def _changes(**kw: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(kw.items())


# Short budgets: long enough that the CartPole learners end well above random (~20) and
# target-not-updated visibly hurts, short enough for <= 15 min on 2 cores with --jobs 2.
# SAC jobs cost the most, mostly JAX start-up and compilation, which the executor's
# compilation cache shares between jobs.
_QUICK_Q = _changes(total_steps=20_000, eval_interval=2_000, eval_episodes=5)
_QUICK_DQN = Entry("dqn", "CartPole-v1", _QUICK_Q)
_QUICK_IQN = Entry("iqn", "CartPole-v1", _QUICK_Q)
QUICK = Profile(
    name="quick",
    description="every trainer on a short budget: the per-commit / `make run` job",
    entries=(
        _QUICK_DQN,
        _QUICK_IQN,
        Entry("dqn", "CartPole-v1",
              _changes(total_steps=15_000, eval_interval=1_500, eval_episodes=5, actors=2),
              variant="actors=2"),
        # SAC learns from learning_starts on; 2k random steps then 6k updates show the
        # first rise of the swingup curve (a 100k-step SAC curve belongs to `full`).
        Entry("sac", "dmc:cartpole-swingup",
              _changes(total_steps=8_000, eval_interval=2_000, eval_episodes=2,
                       learning_starts=2_000)),
    ),
    seeds=(0, 1, 2, 3, 4),
    reference_seeds=tuple(range(100, 110)),
    probes=(Probe(_QUICK_DQN, "target-not-updated"),),
)

_FULL_Q = _changes(total_steps=100_000, eval_interval=10_000, eval_episodes=10)
_FULL_DQN = Entry("dqn", "CartPole-v1", _FULL_Q, timeout_s=7200)
_FULL_IQN = Entry("iqn", "CartPole-v1", _FULL_Q, timeout_s=7200)
FULL = Profile(
    name="full",
    description="what a nightly server runs: 100k-step budgets, 10 seeds",
    entries=(
        _FULL_DQN,
        _FULL_IQN,
        Entry("dqn", "CartPole-v1", (*_FULL_Q, ("actors", 2)), variant="actors=2", timeout_s=7200),
        Entry("iqn", "CartPole-v1", (*_FULL_Q, ("actors", 2)), variant="actors=2", timeout_s=7200),
        Entry("sac", "dmc:cartpole-swingup", _FULL_Q, timeout_s=14400),
    ),
    seeds=tuple(range(10)),
    reference_seeds=tuple(range(100, 120)),
    probes=(Probe(_FULL_DQN, "target-not-updated"), Probe(_FULL_IQN, "target-not-updated")),
)

# Plumbing check (and the CLI smoke test): one tiny DQN entry, seconds per job. Too few
# seeds and steps for a meaningful verdict; it proves the job runs end to end here.
_SMOKE_DQN = Entry("dqn", "CartPole-v1", _changes(total_steps=1_500, eval_interval=500,
                                                   eval_episodes=2, learning_starts=500),
                   timeout_s=600)
SMOKE = Profile(
    name="smoke",
    description="plumbing check: one tiny DQN entry, 2 seeds (about a minute)",
    entries=(_SMOKE_DQN,),
    seeds=(0, 1),
    reference_seeds=(10, 11, 12, 13),
    probes=(Probe(_SMOKE_DQN, "target-not-updated"),),
)

PROFILES: dict[str, Profile] = {p.name: p for p in (QUICK, FULL, SMOKE)}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES[name]
