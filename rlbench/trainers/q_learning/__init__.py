"""Shared machinery of the PyTorch DQN and IQN trainers, one module per concept:

* `networks` — Q-networks, the MLP builder, devices, and the numpy acting path;
* `agent` — `QAgent`: tensor conversion, target updates, schedules, the update step;
* `loop` — `fit`, the single-process training loop, and `train_dispatch`, which hands
  configs with actors to the actor/learner trainer through the trainer registry.

Every name lives in its module; this package re-exports the ones trainers, tests and
benchmarks import from ``rlbench.trainers.q_learning``.
"""

from rlbench.evaluation import EVAL_SEED_OFFSET  # its home; re-exported for old imports
from rlbench.trainers.q_learning.agent import (
    QAgent,
    TensorBatch,
    algo_of,
    batch_to_tensors,
    evaluate_agent,
    hard_update,
    make_agent,
    make_epsilon_schedule,
    planned_updates,
    soft_update,
    updates_due,
)
from rlbench.trainers.q_learning.loop import PendingTransitions, fit, train_dispatch
from rlbench.trainers.q_learning.networks import NumpyMLP, QNetwork, mlp, resolve_device

__all__ = [
    "EVAL_SEED_OFFSET", "NumpyMLP", "PendingTransitions", "QAgent", "QNetwork", "TensorBatch", "algo_of",
    "batch_to_tensors", "evaluate_agent", "fit", "hard_update", "make_agent",
    "make_epsilon_schedule", "mlp", "planned_updates", "resolve_device", "soft_update",
    "train_dispatch", "updates_due",
]
