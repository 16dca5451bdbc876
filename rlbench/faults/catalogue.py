"""The fault catalogue: every documented training-loop bug, switchable back on.

Each row names a documented bug (``docs/faults.md``) and the fix rlbench keeps; the fast
tests that fail when the bug is back carry ``@pytest.mark.detects("<id>")``.
``rlbench faults verify`` runs that kill matrix; ``rlbench faults impact`` measures how much
each bug hurts learning.

Switching a fault on: put its id in a config's ``faults`` field, or set
``RLBENCH_FAULTS=id1,id2``. The decision is made once, when an object (buffer, trainer,
learner) is built — the clean code path never tests a flag inside jitted code or a per-step
loop, so faults cost nothing when off.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

ENV_VAR = "RLBENCH_FAULTS"

# The two source systems, as sections of docs/faults.md.
ANALYSIS = "docs/faults.md#training-loop-analysis-jax-sac"
MULTIPROC = "docs/faults.md#multiprocessing-learning-issues-pytorch-dqniqn"
SOURCE_NAMES = {ANALYSIS: "analysis", MULTIPROC: "multiprocessing"}
"""Short name of each source, as the README's fault table writes it."""


@dataclass(frozen=True)
class Fault:
    id: str
    source: str  # where it is documented: a section of docs/faults.md
    item: str  # the numbered item in it
    bug: str  # what the bug does when switched on
    fix: str  # what rlbench keeps instead
    algos: tuple[str, ...]  # trainers whose code path it lives in
    # Pytest node ids that must fail with the fault on. Catalogue rows leave it empty: their
    # detectors are the tests marked @pytest.mark.detects("<id>") (`faults.detectors`).
    detectors: tuple[str, ...] = ()
    # NAME=VALUE config settings that put the fault's code path in play at all (e.g. actors=2
    # for actor/learner-only bugs); `rlbench faults impact` compares against clean runs
    # with the same settings.
    setup: tuple[str, ...] = ()


CATALOGUE: tuple[Fault, ...] = (
    Fault(
        "stale-eval-actor", ANALYSIS, "#1",
        "acting and evaluation use an actor captured before the scanned updates; the "
        "nnx.update write-back of the scan's final state is dropped",
        "the scan loop's final state is written back; acting and eval use the latest actor",
        ("sac",),
    ),
    Fault(
        "reward-scale-mismatch", ANALYSIS, "#2",
        "the learner silently trains on reward * 0.1 while eval reports raw reward",
        "reward_scale is an explicit config value (1.0 for swingup), applied once, in the TD "
        "target only; eval is raw",
        ("sac",),
    ),
    Fault(
        "sample-before-warmup", ANALYSIS, "#3",
        "gradient updates start before learning_starts transitions exist",
        "no update before learning_starts; the update count follows the schedule exactly",
        ("sac",),
    ),
    Fault(
        "eval-truncation-ignored", ANALYSIS, "#4",
        "evaluation ends an episode only on `terminated`, so time-limit episodes never "
        "complete and their returns run together",
        "truncation ends an episode; 10/10 episodes of 1000 steps are reported",
        ("sac", "dqn", "iqn"),
    ),
    Fault(
        "sample-unfilled-slots", ANALYSIS, "#5",
        "the buffer samples indices in [0, capacity) while only `count` slots are filled",
        "indices are drawn from [0, count) only",
        ("sac", "dqn", "iqn"),
    ),
    Fault(
        "buffer-drops-writes", ANALYSIS, "#6",
        "add() advances the counters but writes the transition into a copy, so the storage "
        "stays zeros",
        "the buffer validates itself: count, contents, and stats() show non-zero data",
        ("sac", "dqn", "iqn"),
    ),
    Fault(
        "stale-optimizer", MULTIPROC, "#1",
        "the optimizer stays bound to parameters that were replaced when weights were copied in",
        "one helper copies weights and re-creates the optimizer; it owns exactly the model's "
        "parameters",
        ("dqn", "iqn"),
    ),
    Fault(
        "epsilon-not-decayed", MULTIPROC, "#2",
        "epsilon stays at its initial value",
        "epsilon decays linearly to epsilon_min over exploration_fraction of training",
        ("dqn", "iqn"),
    ),
    Fault(
        "step-counter-missing", MULTIPROC, "#3",
        "the learner's step counter is never initialised, so the learner process dies",
        "counter initialised; a dying child raises a clear error in the parent, never a hang",
        ("dqn", "iqn"),
        setup=("actors=2",),
    ),
    Fault(
        "target-not-updated", MULTIPROC, "#4",
        "the target network is never updated",
        "soft (tau) or hard (every N updates) target update on schedule",
        ("dqn", "iqn"),
    ),
    Fault(
        "batch-not-on-device", MULTIPROC, "#5",
        "the numpy batch is not converted to tensors of the right dtype and device",
        "conversion happens in one place, on the model's device, dtype-checked",
        ("dqn", "iqn"),
    ),
    Fault(
        "eval-mode-training", MULTIPROC, "#6",
        "the network is left in eval mode during updates",
        "train() in the update, eval() when acting",
        ("dqn", "iqn"),
        setup=("dropout=0.1",),
    ),
    Fault(
        "stale-actor-weights", MULTIPROC, "#7",
        "actors never pick up published weights",
        "actors refresh on every new version; policy lag bounded by publish_interval",
        ("dqn", "iqn"),
        setup=("actors=2",),
    ),
    Fault(
        "epsilon-not-published", MULTIPROC, "#8",
        "the learner decays epsilon but actors keep the old one",
        "epsilon travels with the weights",
        ("dqn", "iqn"),
        setup=("actors=2",),
    ),
    Fault(
        "no-grad-clipping", MULTIPROC, "#9",
        "gradients are not clipped",
        "global-norm clipping at max_grad_norm",
        ("dqn", "iqn"),
    ),
    Fault(
        "no-lr-schedule", MULTIPROC, "#9",
        "an LR schedule is configured but never stepped",
        "the learning rate follows the schedule at every update",
        ("dqn", "iqn"),
        setup=("lr_schedule=linear",),
    ),
)

BY_ID: dict[str, Fault] = {f.id: f for f in CATALOGUE}


def parse_faults(spec: str | Iterable[str] | None) -> frozenset[str]:
    """Comma-separated string or iterable of ids → validated set. Unknown id → ValueError."""
    if spec is None:
        return frozenset()
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    ids = frozenset(i.strip() for i in items if i and i.strip())
    unknown = sorted(ids - BY_ID.keys())
    if unknown:
        raise ValueError(
            f"unknown fault id(s) {', '.join(unknown)}; known: {', '.join(BY_ID)}"
        )
    return ids


def active_faults(configured: str | Iterable[str] | None = ()) -> frozenset[str]:
    """Faults switched on by a config field plus the RLBENCH_FAULTS environment variable."""
    return parse_faults(configured) | parse_faults(os.environ.get(ENV_VAR, ""))
