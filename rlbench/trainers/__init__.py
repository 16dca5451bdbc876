"""Trainer registry: one entry point per algorithm, the same shape in every backend.

A trainer module exposes ``Config`` (a `TrainConfig` subclass) and
``train(config, out_dir=None, progress=True) -> dict`` (the summary also written to
``out_dir/summary.json``). Modules are imported lazily so torch users never import JAX.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlbench.config import TrainConfig


@dataclass(frozen=True)
class TrainerSpec:
    algo: str
    backend: str
    module: str
    summary: str


TRAINERS: dict[str, TrainerSpec] = {}


def _register(*specs: TrainerSpec) -> None:
    for spec in specs:
        TRAINERS[spec.algo] = spec


def _module(algo: str):
    if algo not in TRAINERS:
        raise ValueError(f"unknown algorithm {algo!r}; known: {', '.join(TRAINERS)}")
    return importlib.import_module(TRAINERS[algo].module)


def config_class(algo: str) -> type[TrainConfig]:
    return _module(algo).Config


def train(
    algo: str,
    config: TrainConfig | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
    **changes: Any,
) -> dict[str, Any]:
    """Train `algo` with `config` (defaults if None) updated by `changes`; return the summary."""
    module = _module(algo)
    config = (config or module.Config()).replace(**changes)
    return module.train(config, out_dir=out_dir, progress=progress)


_register(
    TrainerSpec("dqn", "torch", "rlbench.trainers.dqn_torch",
                "DQN / double DQN (PyTorch), discrete actions"),
    TrainerSpec("iqn", "torch", "rlbench.trainers.iqn_torch",
                "implicit quantile networks (PyTorch), discrete actions"),
)
_register(
    TrainerSpec("sac", "jax", "rlbench.trainers.sac_jax",
                "soft actor-critic (JAX, Flax NNX + optax), continuous actions"),
)
