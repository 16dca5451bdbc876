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
    """cpu | cuda | auto (cuda when available), for torch and JAX alike; cuda without a GPU
    is an error."""
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
    parsed = {}
    for name, text in overrides.items():
        try:
            parsed[name] = _coerce(text, hints[name])
        except (TypeError, ValueError) as exc:  # name the field, not just the bad string
            raise ValueError(
                f"--set {name}={text}: {type(config).__name__}.{name} expects "
                f"{_type_name(hints[name])} ({exc})"
            ) from None
    return dataclasses.replace(config, **parsed)


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation)


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


# --- DQN / IQN (PyTorch) -------------------------------------------------------------------
Q_LOSSES = ("mse", "huber")
TARGET_UPDATES = ("hard", "soft")


@dataclass(frozen=True)
class QLearningConfig(TrainConfig):
    """Fields shared by DQN and IQN (single-process and actor/learner)."""

    buffer_size: int = 50_000
    """Replay buffer capacity in transitions (FIFO)."""
    batch_size: int = 128
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor of the TD target."""
    learning_rate: float = 1e-3
    """Adam learning rate (the schedule's factor multiplies it)."""
    lr_schedule: str = "linear"
    """constant | linear | cosine over the planned number of updates (rlbench.schedules)."""
    lr_final_fraction: float = 0.1
    """Final LR as a fraction of learning_rate for the linear/cosine schedules."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip applied before every optimizer step."""
    target_update: str = "hard"
    """hard: copy online → target every target_update_interval updates; soft: Polyak with tau."""
    tau: float = 0.005
    """Soft-update rate: target ← tau·online + (1 − tau)·target (soft mode only)."""
    target_update_interval: int = 100
    """Gradient updates between target updates (hard copy, or one Polyak step when soft)."""
    epsilon_start: float = 1.0
    """Exploration rate at step 0."""
    epsilon_min: float = 0.05
    """Exploration rate reached at exploration_fraction · total_steps and kept afterwards."""
    exploration_fraction: float = 0.2
    """Fraction of total_steps over which epsilon decays linearly."""
    learning_starts: int = 5_000
    """Env steps collected (with epsilon-greedy actions) before the first gradient update."""
    train_frequency: int = 4
    """Env steps between gradient-update rounds."""
    gradient_steps: int = 1
    """Gradient updates per round."""
    hidden_sizes: tuple[int, ...] = (120, 84)
    """Hidden layer widths of the MLP torso."""
    loss: str = "mse"
    """TD loss: mse | huber (DQN; IQN always uses the quantile Huber loss)."""
    double_q: bool = False
    """Double DQN: the online net picks the next action, the target net values it."""
    dropout: float = 0.0
    """Dropout after each hidden layer (0 = none); makes train()/eval() modes matter."""
    layer_norm: bool = False
    """LayerNorm after each hidden layer's linear map."""
    torch_threads: int = 1
    """torch intra-op threads on CPU: small MLPs run fastest (and reproducibly) on one."""
    log_interval: int = 1_000
    """Env steps between training-metric lines in metrics.jsonl."""
    actors: int = 0
    """0 = single process; N >= 1 = actor/learner with N actor processes."""
    publish_interval: int = 10
    """Learner updates between weight publications (actor/learner only)."""
    stall_timeout_s: float = 300.0
    """Actor/learner only: seconds without any progress (claims, writes, updates, completed
    allowances, children returning), once every child is set up, after which
    `advance`/`finish` raise `RunStalled` naming the counters' values; 0 = wait forever."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        positive = ("buffer_size", "batch_size", "target_update_interval", "train_frequency",
                    "gradient_steps", "learning_starts", "torch_threads", "log_interval",
                    "publish_interval")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be non-empty positive widths, got {self.hidden_sizes}")
        checks = {
            "gamma": 0.0 <= self.gamma <= 1.0,
            "learning_rate": self.learning_rate > 0,
            "lr_final_fraction": 0.0 <= self.lr_final_fraction <= 1.0,
            "max_grad_norm": self.max_grad_norm > 0,
            "tau": 0.0 <= self.tau <= 1.0,
            "epsilon_start": 0.0 <= self.epsilon_start <= 1.0,
            "epsilon_min": 0.0 <= self.epsilon_min <= self.epsilon_start,
            "exploration_fraction": 0.0 <= self.exploration_fraction <= 1.0,
            "dropout": 0.0 <= self.dropout < 1.0,
            "actors": self.actors >= 0,
            "stall_timeout_s": self.stall_timeout_s >= 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} out of range: {getattr(self, name)!r}")
        from rlbench.schedules import LR_SCHEDULES

        for name, value, allowed in (("lr_schedule", self.lr_schedule, LR_SCHEDULES),
                                     ("loss", self.loss, Q_LOSSES),
                                     ("target_update", self.target_update, TARGET_UPDATES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


@dataclass(frozen=True)
class DQNConfig(QLearningConfig):
    """DQN (Mnih et al., 2015) with optional double-Q; defaults solve CartPole-v1 in 100k steps."""


@dataclass(frozen=True)
class IQNConfig(QLearningConfig):
    """IQN (Dabney et al., 2018): quantile fractions embedded with cosines."""

    n_quantiles: int = 8
    """N: quantile fractions sampled for the online net in the loss (the paper finds N = 8
    as good as 64 on Atari; the per-quantile head dominates the update cost)."""
    n_target_quantiles: int = 8
    """N': quantile fractions sampled for the target net in the loss."""
    k_quantiles: int = 32
    """K: quantile fractions averaged to pick the greedy action."""
    n_cos: int = 64
    """Cosine basis functions cos(pi·i·tau), i = 0..n_cos-1, embedding each fraction."""
    kappa: float = 1.0
    """Huber threshold of the quantile Huber loss."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("n_quantiles", "n_target_quantiles", "k_quantiles", "n_cos"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.kappa <= 0:
            raise ValueError(f"kappa must be > 0, got {self.kappa}")


@dataclass(frozen=True)
class SACConfig(TrainConfig):
    """Soft Actor-Critic (JAX, Flax NNX + optax). Defaults learn dm_control cartpole swingup."""

    env_id: str = "dmc:cartpole-swingup"
    """Continuous-action env id (dmc:<domain>-<task>, a Box-action gymnasium id, probe:<n>-continuous)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden layer widths of the actor and of each Q network (CleanRL: 256, 256)."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions (device-resident; the oldest are overwritten)."""
    batch_size: int = 256
    """Transitions per gradient update."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics: target ← (1 − tau)·target + tau·online, every update."""
    policy_lr: float = 3e-4
    """Adam learning rate of the actor."""
    q_lr: float = 3e-4
    """Adam learning rate of the twin critics."""
    alpha_lr: float = 3e-4
    """Adam learning rate of log(alpha) (when autotune)."""
    autotune: bool = True
    """Learn the temperature alpha towards target_entropy; False keeps alpha = init_alpha."""
    init_alpha: float = 0.1
    """Initial (or, without autotune, fixed) temperature alpha."""
    target_entropy: float | None = None
    """Entropy target of the temperature loss; None means −|A| (the SAC paper's choice)."""
    reward_scale: float = 1.0
    """Multiplies the raw reward in the TD target, and nowhere else (1.0 for swingup)."""
    learning_starts: int = 5_000
    """Transitions collected with uniform random actions before the first gradient update."""
    utd_ratio: float = 1.0
    """Update-to-data ratio: gradient updates per env step once learning has started."""
    chunk_updates: int = 16
    """K: gradient updates per jitted lax.scan call. 1 is exactly the classic one-update-per-
    step loop; larger K acts with an actor up to K/utd_ratio env steps old (16 of 1000-step
    swingup episodes) in exchange for one dispatch and one write-back per K updates."""
    log_interval: int = 5_000
    """Env steps between `train` lines (losses, alpha, buffer diagnostics) in metrics.jsonl."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "hidden_sizes", tuple(int(h) for h in self.hidden_sizes))
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must be positive widths, got {self.hidden_sizes}")
        for name in ("buffer_size", "batch_size", "learning_starts", "chunk_updates", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("policy_lr", "q_lr", "alpha_lr", "init_alpha", "reward_scale", "utd_ratio"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
