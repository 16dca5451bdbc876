"""Replay goldens: the update maths of DQN, IQN and SAC, pinned on every CPU.

Fixed batches go through the trainers' real update steps (tests/golden/replay.py says why no
environment is in the loop: a whole run forks on the first rounding tie that flips a greedy
action, so its return can only be a golden on one CPU family). The losses, grad norms, LRs
and per-tensor parameter norms after the replay are compared with tests/golden/data/replay_*.json.

Tolerance, measured (scripts/golden_kernels.py; the table is in the README): a value passes
when |got - golden| <= rtol * max(|golden|, FLOOR).
* Kernels. Under every kernel setting this AVX2 machine can run (OpenBLAS core types, torch
  ATen capabilities, MKL instruction sets, XLA ISAs) the largest deviation was 9.0e-7. One of
  those settings, ATEN_CPU_CAPABILITY=default, turns the old whole-run golden's DQN eval
  return from 132 into 98: the failure other CPUs saw, reproduced here.
* Sensitivity. Perturbing every initial weight by one float32 rounding moved nothing by more
  than 2e-7 after the replay; by eight roundings, 5.6e-6 (DQN), 1.1e-4 (IQN: its next action
  is an argmax of sampled means) and 1.0e-3 (SAC: a batch entropy near the tanh saturation).
* Power. Every catalogued fault that changes the update maths moves some value by 0.17 or
  more (the README lists which faults, and by how much).
So rtol is 1e-3 for the torch agents (9x above IQN's eight-rounding drift, 1,000x above any
kernel difference, 170x below the smallest fault) and 1e-2 for SAC (10x above its
eight-rounding drift, 100x below the smallest fault). The same seed on the same machine is
bit-identical: tests/trainers/q_learning/test_q_learning.py::test_fit_same_seed_gives_identical_returns
and tests/trainers/sac/test_sac.py::test_sac_same_seed_same_run.

An intended change of the update maths is re-recorded with `pytest --update-golden` and the
JSON diff is reviewed. A failure here says *that* the update changed; the law tests in
tests/trainers and tests/buffers say *what* broke.
"""

from __future__ import annotations

import pytest

from tests.golden.replay import replay_sac, replay_torch

pytestmark = pytest.mark.golden

GOLDEN_RTOL = {"torch": 1e-3, "sac": 1e-2}
"""Per backend; the module docstring gives the measurements behind each."""
FLOOR = 1e-2
"""Values smaller than this (a bias norm, a loss near zero) are compared in absolute terms."""

CASES: dict[str, tuple[str, dict]] = {
    "dqn_hard": ("torch", {"algo": "dqn", "variant": "hard"}),
    "dqn_soft": ("torch", {"algo": "dqn", "variant": "soft"}),
    "iqn_hard": ("torch", {"algo": "iqn", "variant": "hard"}),
    "sac": ("sac", {}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_golden_replay_update_maths(name: str, golden) -> None:
    backend, kwargs = CASES[name]
    pytest.importorskip("torch" if backend == "torch" else "jax")
    values = (replay_torch if backend == "torch" else replay_sac)(**kwargs)
    golden.check(f"replay_{name}", values, rtol=GOLDEN_RTOL[backend], floor=FLOOR)
