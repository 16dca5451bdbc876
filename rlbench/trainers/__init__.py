"""The built-in trainers: which module holds each, imported lazily so torch users never
import JAX.

A built-in trainer module exposes ``SPEC`` (an `rlbench.api.TrainerSpec`), ``Config`` (a
`TrainConfig` subclass) and ``train(config, out_dir=None, progress=True) -> dict`` (the
summary also written to ``out_dir/summary.json``). Everything outside the trainers reaches
them, and plugin trainers, through `rlbench.api`; `config_class` and `train` here are
that registry's shorthands.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from rlbench.config import TrainConfig


@dataclass(frozen=True)
class BuiltinTrainer:
    """Where a built-in trainer lives (its `rlbench.api.TrainerSpec` is the module's SPEC)."""

    algo: str
    backend: str
    module: str
    summary: str
    actor_learner: str | None = None
    """Module of the multi-process trainer `algo` hands over to when config.actors >= 1."""


class BackendMissing(ImportError):
    """A trainer's backend extra (torch or jax) is not installed."""


TRAINERS: dict[str, BuiltinTrainer] = {}
# The packages each backend extra installs (pyproject: extras `torch` and `jax`).
BACKEND_PACKAGES: dict[str, tuple[str, ...]] = {"torch": ("torch",), "jax": ("jax", "flax", "optax")}


def _register(*specs: BuiltinTrainer) -> None:
    for spec in specs:
        TRAINERS[spec.algo] = spec


def _module(algo: str) -> ModuleType:
    if algo not in TRAINERS:  # plugins are rlbench.api's business
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(TRAINERS)}")
    spec = TRAINERS[algo]
    try:
        return importlib.import_module(spec.module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in BACKEND_PACKAGES[spec.backend]:
            raise BackendMissing(
                f"the {algo} trainer needs the {spec.backend} backend, which is not installed "
                f"({exc}); install it with: pip install 'rlbench[{spec.backend}]'"
            ) from exc
        raise


def trainer_module(algo: str, actors: bool = False) -> ModuleType:
    """The module that trains `algo` — with `actors`, its actor/learner trainer. Trainers
    reach each other through this lookup, never by importing each other: no import cycles."""
    module = _module(algo)
    if not actors:
        return module
    name = TRAINERS[algo].actor_learner
    if name is None:
        raise ValueError(f"{algo} has no actor/learner trainer; set actors=0")
    return importlib.import_module(name)


def backend_available(backend: str) -> bool:
    """Whether every package of `backend` ("torch" or "jax") is importable here."""
    return all(importlib.util.find_spec(name) is not None for name in BACKEND_PACKAGES[backend])


def config_class(algo: str) -> type[TrainConfig]:
    """The config dataclass of any registered trainer, built-in or plugin."""
    from rlbench.api import get_spec

    return get_spec(algo).config


def train(
    algo: str,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
    **changes: Any,
) -> dict[str, Any]:
    """Train any registered trainer with `config` (defaults if None) updated by `changes`;
    return the summary (`rlbench.api.train`)."""
    from rlbench.api import train as api_train

    return api_train(algo, config, out_dir=out_dir, progress=progress, **changes)


_register(
    BuiltinTrainer("dqn", "torch", "rlbench.trainers.dqn_torch",
                "DQN / double DQN (PyTorch), discrete actions",
                actor_learner="rlbench.trainers.actor_learner"),
    BuiltinTrainer("iqn", "torch", "rlbench.trainers.iqn_torch",
                "implicit quantile networks (PyTorch), discrete actions",
                actor_learner="rlbench.trainers.actor_learner"),
)
_register(
    BuiltinTrainer("sac", "jax", "rlbench.trainers.sac_jax",
                "soft actor-critic (JAX, Flax NNX + optax), continuous actions"),
)
