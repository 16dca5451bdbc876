"""Shared record types: replay batches, policies, evaluation results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np


class Batch(NamedTuple):
    """A batch of transitions. Leading axis is the batch.

    `terminated` (a true terminal state: no bootstrap) and `truncated` (a time limit:
    bootstrap from `next_obs`) are kept apart on purpose: merging them into one `done`
    flag is the classic way to teach a value function that time limits are walls.
    """

    obs: Any  # [B, *obs_shape]
    action: Any  # [B, *action_shape]
    reward: Any  # [B] raw environment reward (reward scaling belongs to the learner)
    next_obs: Any  # [B, *obs_shape]
    terminated: Any  # [B] bool
    truncated: Any  # [B] bool


class Policy(Protocol):
    """Maps one observation to one action (what `evaluate` calls)."""

    def __call__(self, obs: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class EvalResult:
    """Outcome of `rlbench.evaluation.evaluate`: raw returns, one entry per episode."""

    returns: tuple[float, ...]
    lengths: tuple[int, ...]
    completed: int  # episodes that ended by termination or truncation
    episodes: int  # episodes asked for

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns)) if self.returns else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "return_mean": self.mean_return,
            "return_std": self.std_return,
            "returns": list(self.returns),
            "lengths": list(self.lengths),
            "completed": self.completed,
            "episodes": self.episodes,
        }
