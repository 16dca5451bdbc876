"""Nightly suites: which (algo, env, config) entries run, on which seeds, with which rule.

Seeds: the nightly run and the reference use *disjoint* seeds. Trainers are deterministic
per seed, so comparing the same seeds would make an unchanged trainer reproduce the
reference exactly and the rule would never see seed noise; disjoint seeds make every
nightly run a genuine same-code rerun (A/A) when nothing changed, which is what the
rule's false-alarm rate is calibrated for.

Profiles are TOML files. The built-ins (`quick`, `full`, `smoke`) are the files in
``rlbench/curves/profiles/`` and are loaded exactly like a user's
``rlbench nightly --profile path/to/mine.toml``. The format::

    name = "mine"                # optional, default: the file name without .toml
    description = "..."          # optional, shown in reports
    seeds = [0, 1, 2, 3, 4]      # nightly (candidate) seeds
    reference_seeds = [100, 101, 102, 103, 104, 105, 106]   # disjoint from seeds
    timeout_s = 1800             # optional default per job (an entry may override it)
    baseline = "refs/mine.json"  # optional reference file, relative to this file

    [budgets]                    # optional named config overrides shared by entries
    short = { total_steps = 20_000, eval_interval = 2_000, eval_episodes = 5 }

    [score_ranges]               # optional (worst, best) returns; "family:" is a prefix
    "Pendulum-v1" = [-1700.0, 0.0]

    [rule]                       # optional: fields of rlbench.curves.compare.Rule
    min_effect = 0.1

    [[entries]]
    algo = "dqn"                 # any registered trainer (rlbench.api), plugins included
    env = "CartPole-v1"
    budget = "short"             # optional: a [budgets] name
    config = { learning_rate = 3e-4 }   # optional: more config fields (win over budget)
    variant = "lr=3e-4"          # optional, needed when one algo/env pair appears twice
    score_range = [0.0, 500.0]   # optional, else [score_ranges], else the built-in table
    timeout_s = 3600             # optional

    [[probes]]                   # optional: a known fault that `--write-reference` runs
    entry = "dqn/CartPole-v1"    # to measure the rule's power
    fault = "target-not-updated"

Every mistake is a `ProfileError` (a ValueError: the CLI prints one line, exit 2) naming
the file and the key. `check_configs` additionally builds every job's config through the
trainer's own config class, so an unknown field or a bad value fails before any training.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlbench.curves.compare import Rule
from rlbench.curves.records import Job

BUILTIN_DIR = Path(__file__).with_name("profiles")
"""The built-in profiles, one TOML file each (also the examples to copy)."""

SCORE_RANGES: dict[str, tuple[float, float]] = {
    "CartPole-v1": (0.0, 500.0),  # +1 per step, 500-step time limit
    "dmc:": (0.0, 1000.0),  # every dm_control task: reward in [0, 1], 1000 steps
}


class ProfileError(ValueError):
    """A profile file is missing, malformed or names something that does not exist."""


def score_range(env_id: str, ranges: Mapping[str, tuple[float, float]] = SCORE_RANGES
                ) -> tuple[float, float]:
    """(worst, best) episode return used to normalise `env_id`'s returns to [0, 1]; keys of
    `ranges` ending in ":" match every env id of that family."""
    if env_id in ranges:
        return ranges[env_id]
    for prefix, rng in ranges.items():
        if prefix.endswith(":") and env_id.startswith(prefix):
            return rng
    raise ValueError(
        f"no score range known for env {env_id!r}; known: {', '.join(ranges)} (set "
        "score_range = [worst, best] on the entry or in the profile's [score_ranges] table)"
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
    baseline: Path | None = None
    """Reference file named by the profile; None → the committed one of `name`."""

    def __post_init__(self) -> None:
        overlap = set(self.seeds) & set(self.reference_seeds)
        if overlap:
            raise ValueError(f"profile {self.name}: nightly and reference seeds overlap: {overlap}")
        names = [e.name for e in self.entries]
        if len(set(names)) != len(names):
            raise ValueError(f"profile {self.name}: duplicate entry names {names} (give one "
                             "of them a variant)")

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


# -- loading -----------------------------------------------------------------------------------
_TOP_KEYS = ("name", "description", "seeds", "reference_seeds", "timeout_s", "baseline",
             "budgets", "score_ranges", "rule", "entries", "probes")
_ENTRY_KEYS = ("algo", "env", "variant", "budget", "config", "score_range", "timeout_s")
_PROBE_KEYS = ("entry", "fault")
# Set by the suite itself: the env by `env`, the seed by `seeds` / `reference_seeds`.
_RESERVED = {"env_id": "set the env with `env = ...`", "seed": "seeds come from `seeds` and "
             "`reference_seeds`"}
_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def builtin_names() -> list[str]:
    """Names of the built-in profiles (the TOML files in `BUILTIN_DIR`)."""
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def builtin_profiles() -> dict[str, Profile]:
    """Every built-in profile, loaded like any profile file."""
    return {name: load_profile(BUILTIN_DIR / f"{name}.toml") for name in builtin_names()}


def get_profile(name: str | Path) -> Profile:
    """A built-in profile by name, or the profile file at `name` (a path)."""
    text = str(name)
    if text in builtin_names():
        return load_profile(BUILTIN_DIR / f"{text}.toml")
    path = Path(text)
    if path.suffix == ".toml" or "/" in text or path.exists():
        return load_profile(path)
    raise ProfileError(f"unknown profile {text!r}; built-in: {', '.join(builtin_names())}, "
                       "or give the path of a .toml profile")


def load_profile(path: str | Path) -> Profile:
    """Read and validate the profile file at `path` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"profile file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path}: not valid TOML: {exc}") from None
    return parse_profile(data, default_name=path.stem, where=str(path), base_dir=path.parent)


def loads_profile(text: str, name: str = "profile") -> Profile:
    """`load_profile` for TOML text (relative `baseline` paths: the working folder)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {name}: not valid TOML: {exc}") from None
    return parse_profile(data, default_name=name, where=name, base_dir=Path.cwd())


def parse_profile(data: Mapping[str, Any], default_name: str, where: str,
                  base_dir: Path) -> Profile:
    """A `Profile` from parsed TOML; every problem is a `ProfileError` naming `where`."""
    try:
        return _parse(data, default_name, base_dir)
    except ProfileError as exc:
        raise ProfileError(f"profile {where}: {exc}") from None
    except ValueError as exc:  # from Rule, Profile, score_range, parse_faults
        raise ProfileError(f"profile {where}: {exc}") from None


def _parse(data: Mapping[str, Any], default_name: str, base_dir: Path) -> Profile:
    _keys(data, _TOP_KEYS, "the top level")
    name = _str(data.get("name", default_name), "name")
    if not _NAME.fullmatch(name):
        raise ProfileError(f"name {name!r} may use only letters, digits, '_', '-' and '.'")
    for key in ("seeds", "reference_seeds", "entries"):
        if key not in data:
            raise ProfileError(f"missing required key {key!r}")
    default_timeout = _positive(data.get("timeout_s", Entry.timeout_s), "timeout_s")
    budgets = {k: _config(v, f"budgets.{k}")
               for k, v in _table(data.get("budgets", {}), "budgets").items()}
    ranges = {k: _range(v, f"score_ranges.{k}")
              for k, v in _table(data.get("score_ranges", {}), "score_ranges").items()}
    rule_table = _table(data.get("rule", {}), "rule")
    _keys(rule_table, tuple(f.name for f in dataclasses.fields(Rule)), "[rule]")
    rule = Rule(**{k: tuple(v) if isinstance(v, list) else v for k, v in rule_table.items()})

    entries = []
    for i, raw in enumerate(_list(data["entries"], "entries")):
        entries.append(_entry(raw, f"entries[{i}]", budgets, ranges, default_timeout))
    if not entries:
        raise ProfileError("no [[entries]]")
    by_name = {e.name: e for e in entries}
    probes = []
    for i, raw in enumerate(_list(data.get("probes", []), "probes")):
        where = f"probes[{i}]"
        raw = _table(raw, where)
        _keys(raw, _PROBE_KEYS, where)
        target = _str(raw.get("entry"), f"{where}.entry")
        if target not in by_name:
            raise ProfileError(f"{where}.entry {target!r} is not an entry of this profile "
                               f"(entries: {', '.join(by_name)})")
        fault = _str(raw.get("fault"), f"{where}.fault")
        from rlbench.faults import parse_faults  # light: the catalogue imports no backend

        parse_faults((fault,))
        probes.append(Probe(by_name[target], fault))
    baseline = data.get("baseline")
    return Profile(
        name=name, entries=tuple(entries),
        seeds=_seeds(data["seeds"], "seeds"),
        reference_seeds=_seeds(data["reference_seeds"], "reference_seeds"),
        probes=tuple(probes), rule=rule,
        description=_str(data.get("description", ""), "description"),
        baseline=None if baseline is None else (base_dir / _str(baseline, "baseline")).resolve(),
    )


def _entry(raw: Any, where: str, budgets: Mapping[str, dict[str, Any]],
           ranges: Mapping[str, tuple[float, float]], default_timeout: float) -> Entry:
    from rlbench.api import trainer_names  # lists built-ins and plugins, imports no backend

    raw = _table(raw, where)
    _keys(raw, _ENTRY_KEYS, where)
    for key in ("algo", "env"):
        if key not in raw:
            raise ProfileError(f"{where} lacks {key!r}")
    algo, env = _str(raw["algo"], f"{where}.algo"), _str(raw["env"], f"{where}.env")
    if algo not in (names := trainer_names()):
        raise ProfileError(f"{where}: unknown trainer {algo!r}; registered: {', '.join(names)} "
                           "(plugins register under the entry-point group 'rlbench.trainers')")
    changes: dict[str, Any] = {}
    if "budget" in raw:
        budget = _str(raw["budget"], f"{where}.budget")
        if budget not in budgets:
            raise ProfileError(f"{where}.budget {budget!r} is not in [budgets] "
                               f"(budgets: {', '.join(budgets) or 'none'})")
        changes |= budgets[budget]
    changes |= _config(raw.get("config", {}), f"{where}.config")
    explicit = raw.get("score_range")
    rng = _range(explicit, f"{where}.score_range") if explicit is not None else None
    if rng is None and ranges:
        try:
            rng = score_range(env, ranges)
        except ValueError:
            pass  # not in the profile's table: the built-in table may know it
    entry = Entry(algo, env, tuple(changes.items()), _str(raw.get("variant", ""), f"{where}.variant"),
                  rng, _positive(raw.get("timeout_s", default_timeout), f"{where}.timeout_s"))
    try:
        entry.range  # noqa: B018 — fail now, not after hours of training
    except ValueError as exc:
        raise ProfileError(f"{where} ({entry.name}): {exc}") from None
    return entry


def check_configs(profile: Profile) -> None:
    """Build every entry's config through its trainer's config class (`rlbench.api`):
    unknown fields, wrongly typed or impossible values fail here, before any training.

    Imports each trainer's backend. A trainer whose backend is not installed is skipped:
    its jobs report that as their error, as a built-in profile's do.
    """
    from rlbench.api import get_spec
    from rlbench.trainers import BackendMissing

    for entry in (*profile.entries, *(p.faulty for p in profile.probes)):
        try:
            spec = get_spec(entry.algo)
        except BackendMissing:
            continue
        changes = entry.job(profile.seeds[0]).config_changes()
        try:
            _check_types(spec.config, changes)
            spec.default_config(**changes)
        except (ValueError, TypeError) as exc:
            raise ProfileError(f"profile {profile.name}: entry {entry.name}: {exc}") from None


def _check_types(cls: type, changes: Mapping[str, Any]) -> None:
    """Name the field and the expected type when a TOML value has the wrong one (the config
    classes check ranges, not types: `"20k" < 1` would surface as an obscure TypeError)."""
    fields = {f.name for f in dataclasses.fields(cls)}
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 — a plugin's unresolvable annotations: skip the check
        return
    for key, value in changes.items():
        if key not in fields:
            continue  # default_config names unknown fields with the full list
        want = hints.get(key)
        ok = {int: lambda v: isinstance(v, int) and not isinstance(v, bool),
              float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
              bool: lambda v: isinstance(v, bool), str: lambda v: isinstance(v, str)}.get(want)
        if want is not None and typing.get_origin(want) is tuple:
            ok = lambda v: isinstance(v, tuple)  # noqa: E731
        if ok is not None and not ok(value):
            raise ProfileError(f"config {key} = {value!r}: {cls.__name__}.{key} expects "
                               f"{getattr(want, '__name__', str(want))}")


# -- small validators (each names the key it checks) -------------------------------------------
def _keys(table: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise ProfileError(f"unknown key(s) {', '.join(unknown)} in {where}; allowed: "
                           f"{', '.join(allowed)}")


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProfileError(f"{where} must be a table, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ProfileError(f"{where} must be an array ([[{where}]] tables), got "
                           f"{type(value).__name__}")
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ProfileError(f"{where} must be a string, got {value!r}")
    return value


def _positive(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ProfileError(f"{where} must be a positive number, got {value!r}")
    return float(value)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if (not isinstance(value, list) or not value
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value)):
        raise ProfileError(f"{where} must be a non-empty array of non-negative integers, "
                           f"got {value!r}")
    if len(set(value)) != len(value):
        raise ProfileError(f"{where} has duplicates: {value}")
    return tuple(value)


def _range(value: Any, where: str) -> tuple[float, float]:
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
            or not value[1] > value[0]):
        raise ProfileError(f"{where} must be [worst, best] with best > worst, got {value!r}")
    return float(value[0]), float(value[1])


def _config(value: Any, where: str) -> dict[str, Any]:
    """Config overrides: scalars or arrays of scalars (arrays become tuples, as the config
    dataclasses hold them)."""
    table = _table(value, where)
    out = {}
    for key, v in table.items():
        if key in _RESERVED:
            raise ProfileError(f"{where}.{key}: {_RESERVED[key]}")
        if isinstance(v, list) and all(isinstance(x, (str, int, float, bool)) for x in v):
            v = tuple(v)
        elif not isinstance(v, (str, int, float, bool)):
            raise ProfileError(f"{where}.{key} must be a string, number, boolean or an array "
                               f"of them, got {type(v).__name__}")
        out[key] = v
    return out


# -- writing -----------------------------------------------------------------------------------
def dumps_profile(profile: Profile) -> str:
    """`profile` as TOML that `loads_profile` reads back to an equal profile (budgets are
    written out per entry; comments are not kept)."""
    lines = [f"name = {_toml(profile.name)}", f"description = {_toml(profile.description)}",
             f"seeds = {_toml(profile.seeds)}",
             f"reference_seeds = {_toml(profile.reference_seeds)}"]
    if profile.baseline is not None:
        lines.append(f"baseline = {_toml(str(profile.baseline))}")
    rule = dataclasses.asdict(profile.rule)
    lines += ["", "[rule]", *(f"{k} = {_toml(v)}" for k, v in rule.items())]
    for e in profile.entries:
        lines += ["", "[[entries]]", f"algo = {_toml(e.algo)}", f"env = {_toml(e.env)}"]
        if e.variant:
            lines.append(f"variant = {_toml(e.variant)}")
        if e.score_range is not None:
            lines.append(f"score_range = {_toml(e.score_range)}")
        lines.append(f"timeout_s = {_toml(e.timeout_s)}")
        if e.changes:
            lines.append("config = { " + ", ".join(f"{_key(k)} = {_toml(v)}"
                                                   for k, v in e.changes) + " }")
    for p in profile.probes:
        lines += ["", "[[probes]]", f"entry = {_toml(p.entry.name)}", f"fault = {_toml(p.fault)}"]
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml(key)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return repr(value) if math.isfinite(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, str):
        return json.dumps(value)  # JSON's string escapes are valid TOML basic-string escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as TOML")

