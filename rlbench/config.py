"""Frozen config dataclasses. `TrainConfig` holds what every trainer shares; each algorithm
subclasses it (DQN/IQN for PyTorch, SAC for JAX) with a docstring per field."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

from rlbench.faults import parse_faults

C = TypeVar("C", bound="TrainConfig")


@dataclass(frozen=True)
class TrainConfig:
    env_id: str = "CartPole-v1"
    """Environment id understood by `rlbench.envs.make`."""
    seed: int = 0
    """Seeds the env, the networks and every sampler; same seed + machine → same run."""
    total_steps: int = 100_000
    """Environment steps to train for (summed over actors in the actor/learner trainer)."""
    eval_interval: int = 10_000
    """Env steps between evaluations (an evaluation also runs at the end)."""
    eval_episodes: int = 10
    """Episodes per evaluation, through `rlbench.evaluation.evaluate`."""
    device: str = "auto"
    """cpu | cuda | auto (cuda when available). JAX uses its default device."""
    faults: tuple[str, ...] = ()
    """Fault ids to switch on (see `rlbench faults list`); RLBENCH_FAULTS adds more."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(sorted(parse_faults(self.faults))))
        for name in ("total_steps", "eval_interval", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be cpu, cuda or auto, got {self.device!r}")

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(text: str, annotation: Any) -> Any:
    """Parse a CLI string into the field's declared type."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if text.lower() in ("none", "null"):
            return None
        return _coerce(text, args[0])
    if origin is tuple:
        return tuple(s for s in text.split(",") if s)
    if annotation is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if annotation in (int, float, str):
        return annotation(float(text)) if annotation is int and "e" in text.lower() else annotation(text)
    raise TypeError(f"cannot parse a {annotation!r} from the command line")


def with_overrides(config: C, overrides: dict[str, str]) -> C:
    """`config` with `--set name=value` strings parsed by the fields' types."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - fields.keys())
    if unknown:
        raise ValueError(
            f"unknown {type(config).__name__} field(s): {', '.join(unknown)}; "
            f"fields are: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(type(config))
    return config.replace(**{k: _coerce(v, hints[k]) for k, v in overrides.items()})


def field_docs(cls: type) -> dict[str, str]:
    """Field name → its attribute docstring (for `--help` and the README)."""
    import ast
    import inspect

    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        body = ast.parse(inspect.getsource(klass)).body[0].body
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
            ):
                docs[node.target.id] = str(nxt.value.value)
    return docs
