"""The public trainer protocol: what rlbench needs from any trainer to train, check and
benchmark it. This module is the stable contract; it imports no backend.

A trainer plugs in with a `TrainerSpec`:

* ``name`` — the id users type (``rlbench train NAME``, ``rlbench check NAME``);
* ``action_kinds`` — ``{"discrete"}``, ``{"continuous"}`` or both;
* ``config`` — a dataclass with at least ``env_id: str``, ``seed: int`` and
  ``total_steps: int`` (optional fields rlbench uses when present: ``gamma``, ``faults``,
  ``eval_interval``, ``eval_episodes``);
* ``make(config) -> Trainer``.

A `Trainer` trains resumably (``advance(steps)``), hands out its greedy evaluation policy,
counts its env steps and reports metrics; ``values(obs)`` is optional and switches on the
value checks of ``rlbench check``.

Third-party packages register specs under the entry-point group ``rlbench.trainers``
(`ENTRY_POINT_GROUP`); the entry point names the spec object (or a zero-argument function
returning it)::

    [project.entry-points."rlbench.trainers"]
    sb3-dqn = "rlbench_sb3:DQN_SPEC"
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

ENTRY_POINT_GROUP = "rlbench.trainers"
ActionKind = Literal["discrete", "continuous"]
ACTION_KINDS: tuple[ActionKind, ...] = ("discrete", "continuous")
REQUIRED_CONFIG_FIELDS = ("env_id", "seed", "total_steps")


@runtime_checkable
class Trainer(Protocol):
    """One training run of one trainer on one env with one seed.

    Optional members: ``values(obs)`` (see `ValueTrainer`), ``close()`` (free processes
    and memory; called by rlbench when it is done with the trainer) and ``reproducible``
    (see `is_reproducible`)."""

    @property
    def env_steps(self) -> int:
        """Env steps taken so far (summed over envs/actors)."""
        ...

    def advance(self, steps: int) -> None:
        """Train for `steps` more env steps; calls resume where the last one stopped."""
        ...

    def policy(self) -> Callable[[np.ndarray], Any]:
        """The greedy evaluation policy now: one observation → one env action."""
        ...

    def metrics(self) -> dict[str, float]:
        """Training metrics now (losses, episode returns, ...). ``eval_return``, when
        present, is the mean return of the trainer's own latest evaluation."""
        ...


@runtime_checkable
class ValueTrainer(Trainer, Protocol):
    """A trainer that can report value estimates (switches on the value checks)."""

    def values(self, obs: np.ndarray) -> np.ndarray:
        """For one observation: discrete actions → Q(obs, a) for every action, shape
        [n_actions]; continuous actions → Q(obs, greedy action), shape [1]."""
        ...


def has_values(trainer: Trainer) -> bool:
    return callable(getattr(trainer, "values", None))


def is_reproducible(trainer: Trainer) -> bool:
    """Whether the same seed twice gives bit-identical runs on one machine. Optional
    attribute ``reproducible`` (default True): an asynchronous trainer, whose results
    depend on how the OS schedules its processes, sets it to False, and the determinism
    check then holds it to the same greedy behaviour instead of identical values."""
    return bool(getattr(trainer, "reproducible", True))


@dataclass(frozen=True)
class TrainerSpec:
    """How rlbench finds, configures and builds one trainer."""

    name: str
    action_kinds: frozenset[str]
    config: type
    make: Callable[[Any], Trainer]
    summary: str = ""
    check_overrides: Mapping[str, Any] = field(default_factory=dict)
    """Config fields for the short probe runs of `rlbench check` (e.g. an earlier
    ``learning_starts``): a probe needs a few hundred steps, not a benchmark's warm-up."""
    check_steps: int = 1_200
    """Env steps per probe run of `rlbench check` (with `check_overrides` applied)."""
    presets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Named config changes (``rlbench train NAME --preset fast``), each documented where
    it is defined with what it was measured to reach."""
    run: Callable[..., dict[str, Any]] | None = None
    """``run(config, out_dir=None, progress=False) -> summary``: the trainer's own full run
    writing ``summary.json``. None: `train` drives `make` through `run_trainer`."""
    backend: str = "plugin"

    def __post_init__(self) -> None:
        kinds = frozenset(self.action_kinds)
        object.__setattr__(self, "action_kinds", kinds)
        if not kinds or not kinds <= set(ACTION_KINDS):
            raise ValueError(f"trainer {self.name!r}: action_kinds must be a non-empty subset of "
                             f"{ACTION_KINDS}, got {sorted(kinds)}")
        if not dataclasses.is_dataclass(self.config):
            raise TypeError(f"trainer {self.name!r}: config must be a dataclass, got {self.config!r}")
        names = {f.name for f in dataclasses.fields(self.config)}
        missing = [f for f in REQUIRED_CONFIG_FIELDS if f not in names]
        if missing:
            raise TypeError(f"trainer {self.name!r}: config {self.config.__name__} lacks the "
                            f"field(s) {', '.join(missing)}")
        for what, changes in (("check_overrides", self.check_overrides),
                              *((f"preset {k!r}", v) for k, v in self.presets.items())):
            unknown = sorted(set(changes) - names)
            if unknown:
                raise ValueError(f"trainer {self.name!r}: {what} names unknown config "
                                 f"field(s) {', '.join(unknown)}")

    def default_config(self, **changes: Any) -> Any:
        """The config class's defaults with `changes` (unknown fields: a clear error)."""
        return replace_config(self.config(), **changes)


def replace_config(config: Any, **changes: Any) -> Any:
    """`dataclasses.replace` that names the unknown field instead of a TypeError traceback."""
    names = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(changes) - names)
    if unknown:
        raise ValueError(f"{type(config).__name__} has no field(s) {', '.join(unknown)}; "
                         f"fields are: {', '.join(sorted(names))}")
    return dataclasses.replace(config, **changes)


# -- the registry ----------------------------------------------------------------------------
# Built-ins are listed in `rlbench.trainers.TRAINERS` with the module holding their SPEC, so
# that listing them imports neither torch nor JAX. Plugins come from entry points, loaded on
# first use; `register` adds specs in-process.
_loaded: dict[str, TrainerSpec] = {}


def _builtins() -> Mapping[str, Any]:
    from rlbench.trainers import TRAINERS

    return TRAINERS


def _plugin_entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)
            if ep.name not in _builtins()}


def plugin_origin(name: str) -> str:
    """Where a plugin trainer comes from, without importing it (the full summary needs the
    import: `rlbench train NAME --help`): "plugin from <distribution> <version>"."""
    ep = _plugin_entry_points().get(name)
    if ep is None or ep.dist is None:
        return "registered in this process" if name in _loaded else "plugin"
    return f"plugin from {ep.dist.name} {ep.dist.version}"


def trainer_names() -> list[str]:
    """Every registered trainer: built-ins, installed plugins, then in-process registrations
    (nothing is imported)."""
    names = [*_builtins(), *sorted(_plugin_entry_points())]
    return names + sorted(set(_loaded) - set(names))


def get_spec(name: str) -> TrainerSpec:
    """The spec registered as `name` (imports its module or loads its entry point)."""
    if name in _loaded:
        return _loaded[name]
    if name in _builtins():
        from rlbench.trainers import trainer_module  # backend-missing errors live there

        spec = trainer_module(name).SPEC
    else:
        plugins = _plugin_entry_points()
        if name not in plugins:
            raise ValueError(f"unknown trainer {name!r}; registered: {', '.join(trainer_names())} "
                             f"(plugins register under the entry-point group {ENTRY_POINT_GROUP!r})")
        obj = plugins[name].load()
        spec = obj if isinstance(obj, TrainerSpec) else obj()
        if not isinstance(spec, TrainerSpec):
            raise TypeError(f"entry point {name!r} ({plugins[name].value}) gave {type(spec).__name__}, "
                            "not an rlbench.api.TrainerSpec")
        if spec.name != name:
            raise ValueError(f"entry point {name!r} names a spec called {spec.name!r}; they must match")
    _loaded[name] = spec
    return spec


def register(spec: TrainerSpec) -> None:
    """Register `spec` in this process (tests, notebooks); packages use the entry point."""
    if spec.name in _builtins():
        raise ValueError(f"{spec.name!r} is a built-in trainer name")
    _loaded[spec.name] = spec


def make_trainer(name: str, config: Any = None, **changes: Any) -> Trainer:
    """Build trainer `name` from `config` (its defaults if None) with `changes`."""
    spec = get_spec(name)
    config = replace_config(config if config is not None else spec.config(), **changes)
    return spec.make(config)


# -- a full run through the protocol ---------------------------------------------------------
def train(name: str, config: Any = None, out_dir: str | Path | None = None,
          progress: bool = False, **changes: Any) -> dict[str, Any]:
    """Train `name` for `config.total_steps`; write ``summary.json`` + ``metrics.jsonl`` to
    `out_dir` if given; return the summary."""
    spec = get_spec(name)
    config = replace_config(config if config is not None else spec.config(), **changes)
    if spec.run is not None:
        return spec.run(config, out_dir=out_dir, progress=progress)
    return run_trainer(spec, config, out_dir=out_dir, progress=progress)


def run_trainer(spec: TrainerSpec, config: Any, out_dir: str | Path | None = None,
                progress: bool = False) -> dict[str, Any]:
    """The generic run for trainers without their own `run`: `advance` in slices, evaluate
    the greedy policy with rlbench's protocol every ``eval_interval`` steps and at the end."""
    from rlbench.evaluation import EVAL_SEED_OFFSET, evaluate
    from rlbench.runs import Progress, RunRecorder
    from rlbench.schedules import next_multiple

    total = int(config.total_steps)
    interval = int(getattr(config, "eval_interval", max(total // 10, 1)))
    episodes = int(getattr(config, "eval_episodes", 10))
    faults = tuple(getattr(config, "faults", ()))
    trainer = spec.make(config)
    recorder = RunRecorder(out_dir, spec.name, spec.backend, config)
    bar = Progress(total, spec.name, enabled=progress)
    try:
        while trainer.env_steps < total:
            start, before = time.perf_counter(), trainer.env_steps
            trainer.advance(min(total, next_multiple(before, interval)) - before)
            sps = (trainer.env_steps - before) / max(time.perf_counter() - start, 1e-9)
            recorder.log(trainer.env_steps, kind="train", sps=sps, **trainer.metrics())
            result = evaluate(trainer.policy(), config.env_id, episodes,
                              seed=config.seed + EVAL_SEED_OFFSET, faults=faults)
            recorder.record_eval(trainer.env_steps, result)
            bar.update(trainer.env_steps, force=True, eval=result.mean_return)
    except BaseException:
        recorder.close()
        raise
    finally:
        close = getattr(trainer, "close", None)
        if callable(close):
            close()
    return recorder.finish(trainer.env_steps)

