"""Learning-curve records: one job's result, one entry's curve set, reference files.

A *job* is one training run (algo, env, config changes, seed). Its *record* is what the
nightly job keeps of it: status, the eval-return curve, timings. A *curve set* stacks the
curves of every seed of one suite entry into a `[seeds, eval points]` matrix — the unit
the statistics and the comparison work on. A *reference file* is a JSON document of curve
sets made by real runs on a named machine, plus the rule's calibration measured on them.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "rlbench.curves/1"

# Job / entry statuses. Only "ok" curves are ever compared: a crashed or interrupted job
# is reported as such, never folded into a pass or a regression.
OK, ERROR, INCOMPLETE = "ok", "error", "incomplete"
STATUSES = (OK, ERROR, INCOMPLETE)


class BaselineError(ValueError):
    """A reference (baseline) file is missing, unreadable or does not fit the profile."""


@dataclass(frozen=True)
class Job:
    """One training run of the suite. `changes` are config overrides (env_id included)."""

    entry: str  # suite entry name, e.g. "dqn/CartPole-v1"
    algo: str
    seed: int
    changes: tuple[tuple[str, Any], ...]
    timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        # Canonical form (sorted, lists as tuples) so a job read back from JSON equals
        # the job the profile builds: that equality is what --resume relies on.
        canon = tuple(sorted((str(k), tuple(v) if isinstance(v, list) else v)
                             for k, v in dict(self.changes).items()))
        object.__setattr__(self, "changes", canon)

    @property
    def id(self) -> str:
        """File-system-safe unique name: entry slug + seed."""
        return f"{slug(self.entry)}-s{self.seed}"

    def config_changes(self) -> dict[str, Any]:
        """Keyword changes for `rlbench.trainers.train`."""
        return dict(self.changes) | {"seed": self.seed}

    def to_dict(self) -> dict[str, Any]:
        return {"entry": self.entry, "algo": self.algo, "seed": self.seed,
                "changes": {k: v for k, v in self.changes}, "timeout_s": self.timeout_s}

    def same_run(self, other: Job) -> bool:
        """True when `other` trains exactly this run (the timeout does not matter): --resume
        only reuses a stored result whose job is the profile's job today."""
        return (self.entry, self.algo, self.seed, self.changes) == (
            other.entry, other.algo, other.seed, other.changes)


def machine() -> str:
    """This host, as records and reports name it."""
    return f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}, {platform.system()})"


def now() -> str:
    """UTC now, ISO 8601 to the second (2026-12-02T16:40:00Z)."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@dataclass(frozen=True)
class JobRecord:
    """What the nightly job keeps of one run."""

    job: Job
    status: str
    steps: tuple[int, ...] = ()
    returns: tuple[float, ...] = ()  # mean eval return at each eval step (raw env reward)
    wall_seconds: float | None = None
    sps: float | None = None
    error: str | None = None
    cpu_seconds: float | None = None  # user+system CPU of the job and its child processes
    machine: str | None = None  # where the job ran (`machine()`)
    finished: str | None = None  # when it ended (UTC, ISO 8601): resumed suites mix days

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        if len(self.steps) != len(self.returns):
            raise ValueError(f"{self.job.id}: {len(self.steps)} steps but {len(self.returns)} returns")
        if self.status == OK and not self.steps:
            raise ValueError(f"{self.job.id}: status ok but no eval points")

    @classmethod
    def from_summary(cls, job: Job, summary: Mapping[str, Any]) -> JobRecord:
        """Record of a finished run, from the trainer's summary dict."""
        history = summary.get("eval_history") or []
        steps = tuple(int(h["step"]) for h in history)
        returns = tuple(float(h["return_mean"]) for h in history)
        bad = [s for s, r in zip(steps, returns) if not math.isfinite(r)]
        if not history or bad:
            return cls(job, ERROR, steps, returns, summary.get("wall_seconds"), summary.get("sps"),
                       "run finished without a finite eval history"
                       + (f" (non-finite return at steps {bad})" if bad else ""))
        return cls(job, OK, steps, returns, summary.get("wall_seconds"), summary.get("sps"))

    def to_dict(self) -> dict[str, Any]:
        return {"job": self.job.to_dict(), "status": self.status, "steps": list(self.steps),
                "returns": list(self.returns), "wall_seconds": self.wall_seconds,
                "sps": self.sps, "error": self.error, "cpu_seconds": self.cpu_seconds,
                "machine": self.machine, "finished": self.finished}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JobRecord:
        j = d["job"]
        job = Job(j["entry"], j["algo"], int(j["seed"]), tuple(j["changes"].items()),
                  float(j.get("timeout_s", 3600.0)))
        return cls(job, d["status"], tuple(int(s) for s in d["steps"]),
                   tuple(float(r) for r in d["returns"]), d.get("wall_seconds"), d.get("sps"),
                   d.get("error"), d.get("cpu_seconds"), d.get("machine"), d.get("finished"))


def provenance(records: Iterable[JobRecord]) -> dict[str, Any]:
    """Where and when the curves of a set of records were made: the machines of its "ok"
    records (the only ones whose curves are compared) with job counts, their first and last
    finish time, and `mixed_machines` when more than one machine made them (a reference
    resumed elsewhere, a distributed executor: its curves then carry machine differences as
    well as seed noise). Ok records without a machine (written before records kept one)
    are counted apart, not as another machine."""
    ok = [r for r in records if r.status == OK]
    counts: dict[str, int] = {}
    for r in ok:
        if r.machine:
            counts[r.machine] = counts.get(r.machine, 0) + 1
    times = sorted(r.finished for r in ok if r.finished)
    return {"job_machines": dict(sorted(counts.items())),
            "jobs_without_machine": sum(1 for r in ok if not r.machine),
            "mixed_machines": len(counts) > 1,
            "jobs_finished": [times[0], times[-1]] if times else None}


@dataclass(frozen=True, eq=False)
class CurveSet:
    """The eval-return curves of every seed of one entry on one step grid.

    `returns[i, t]` is seed `seeds[i]`'s mean eval return at `steps[t]` (raw env reward).
    `score_range` (worst, best) maps returns to [0, 1] so effects and AUCs are comparable
    across environments.
    """

    name: str
    algo: str
    env: str
    seeds: tuple[int, ...]
    steps: np.ndarray  # [T] env steps
    returns: np.ndarray  # [n_seeds, T]
    score_range: tuple[float, float]
    changes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        steps = np.asarray(self.steps, dtype=np.float64)
        returns = np.asarray(self.returns, dtype=np.float64)
        object.__setattr__(self, "steps", steps)
        object.__setattr__(self, "returns", returns)
        where = f"curve set {self.name!r}"
        if steps.ndim != 1 or steps.size < 1:
            raise ValueError(f"{where}: steps must be a non-empty 1-D list")
        if np.any(np.diff(steps) <= 0):
            raise ValueError(f"{where}: steps must be strictly increasing")
        if returns.shape != (len(self.seeds), steps.size):
            raise ValueError(
                f"{where}: returns has shape {returns.shape}, expected "
                f"({len(self.seeds)} seeds, {steps.size} eval points)"
            )
        if not np.all(np.isfinite(returns)):
            raise ValueError(f"{where}: returns contain NaN or inf")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"{where}: duplicate seeds {self.seeds}")
        lo, hi = self.score_range
        if not hi > lo:
            raise ValueError(f"{where}: score_range must be (worst, best) with best > worst")

    @property
    def n(self) -> int:
        return len(self.seeds)

    def normalised(self) -> np.ndarray:
        lo, hi = self.score_range
        return (self.returns - lo) / (hi - lo)

    def subset(self, index: Sequence[int] | np.ndarray) -> CurveSet:
        index = np.asarray(index, dtype=int)
        return CurveSet(self.name, self.algo, self.env, tuple(self.seeds[i] for i in index),
                        self.steps, self.returns[index], self.score_range, self.changes)

    def on_grid(self, steps: np.ndarray) -> CurveSet:
        """This set linearly interpolated onto another step grid (inside its own range)."""
        steps = np.asarray(steps, dtype=np.float64)
        if np.array_equal(steps, self.steps):
            return self
        returns = np.stack([np.interp(steps, self.steps, r) for r in self.returns])
        return CurveSet(self.name, self.algo, self.env, self.seeds, steps, returns,
                        self.score_range, self.changes)

    @classmethod
    def from_records(
        cls, name: str, records: Iterable[JobRecord], score_range: tuple[float, float],
    ) -> CurveSet:
        """Stack the ok records of one entry. Seeds evaluated at slightly different steps
        (the actor/learner counts steps across processes) are put on the first seed's grid."""
        records = sorted((r for r in records if r.status == OK), key=lambda r: r.job.seed)
        if not records:
            raise ValueError(f"{name}: no finished runs to build a curve set from")
        first = records[0]
        grid = np.asarray(first.steps, dtype=np.float64)
        rows = []
        for r in records:
            steps = np.asarray(r.steps, dtype=np.float64)
            rows.append(r.returns if np.array_equal(steps, grid) else np.interp(grid, steps, r.returns))
        return cls(name, first.job.algo, dict(first.job.changes).get("env_id", "?"),
                   tuple(r.job.seed for r in records), grid, np.asarray(rows), tuple(score_range),
                   dict(first.job.changes))

    def to_dict(self) -> dict[str, Any]:
        return {"algo": self.algo, "env": self.env, "changes": self.changes,
                "score_range": list(self.score_range), "seeds": list(self.seeds),
                "steps": self.steps.tolist(), "returns": self.returns.tolist()}

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> CurveSet:
        missing = [k for k in ("algo", "env", "score_range", "seeds", "steps", "returns") if k not in d]
        if missing:
            raise ValueError(f"entry {name!r} lacks {', '.join(missing)}")
        return cls(name, str(d["algo"]), str(d["env"]), tuple(int(s) for s in d["seeds"]),
                   np.asarray(d["steps"], dtype=np.float64),
                   np.asarray(d["returns"], dtype=np.float64),
                   tuple(float(x) for x in d["score_range"]), dict(d.get("changes", {})))


@dataclass(frozen=True)
class Reference:
    """A reference (baseline) file: curve sets per entry + the rule's measured calibration."""

    profile: str
    entries: dict[str, CurveSet]
    meta: dict[str, Any] = field(default_factory=dict)  # machine, created, versions, ...
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "profile": self.profile, "meta": self.meta,
                "calibration": self.calibration,
                "entries": {k: v.to_dict() for k, v in sorted(self.entries.items())}}


def load_reference(path: str | Path) -> Reference:
    """Read and validate a reference file; every problem is a `BaselineError` saying what."""
    path = Path(path)
    if not path.is_file():
        raise BaselineError(
            f"baseline file not found: {path} (make one with "
            f"`rlbench nightly --profile PROFILE --write-reference {path}`)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BaselineError(f"baseline file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise BaselineError(f"baseline file {path}: expected format {FORMAT!r}, got {got!r}")
    entries = data.get("entries")
    if not isinstance(entries, dict) or not entries:
        raise BaselineError(f"baseline file {path} has no entries")
    parsed = {}
    for name, d in entries.items():
        try:
            parsed[name] = CurveSet.from_dict(name, d)
        except (ValueError, TypeError, KeyError) as exc:
            raise BaselineError(f"baseline file {path}: {exc}") from None
        if parsed[name].n < 2:
            raise BaselineError(f"baseline file {path}: entry {name!r} has {parsed[name].n} "
                                "seed(s); the comparison needs at least 2")
    return Reference(str(data.get("profile", "?")), parsed, dict(data.get("meta", {})),
                     dict(data.get("calibration", {})))
