"""Every stored transition can be sampled, in all three replay buffers.

Law: after n adds to a buffer of capacity C, `sample` draws from exactly the min(n, C)
newest transitions, each of them reachable. Transitions are told apart by a unique reward.
With 600 draws from at most 5 filled slots, a correct buffer misses a slot with
probability below 5·(4/5)^600 ≈ 1e-58, and the seeds are fixed, so the test never flakes;
an off-by-one in the sampling range (never the newest slot, or an unfilled one) fails it.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlbench.buffers import ReplayBuffer

CAPACITY, DRAWS = 5, 600


def _rows(n: int) -> dict[str, np.ndarray]:
    return {
        "obs": np.ones((n, 2), np.float32), "action": np.zeros(n, np.int64),
        "reward": np.arange(1, n + 1, dtype=np.float32), "next_obs": np.ones((n, 2), np.float32),
        "terminated": np.zeros(n, bool), "truncated": np.zeros(n, bool),
    }


def _sampled_rewards(kind: str, n_added: int) -> set[float]:
    rows = _rows(n_added)
    if kind == "jax":
        jax = pytest.importorskip("jax")
        from rlbench.buffers import JaxReplayBuffer
        from rlbench.types import Batch

        buf = JaxReplayBuffer(CAPACITY, (2,), ())
        state = buf.init()
        for i in range(n_added):  # one row at a time: wraps around like a live loop
            state = buf.add_batch(state, Batch(**{k: v[i:i + 1] for k, v in rows.items()}))
        return set(np.asarray(buf.sample(state, DRAWS, jax.random.key(0)).reward).tolist())
    if kind == "shared":
        from rlbench.buffers.shared import SharedReplayBuffer

        buf = SharedReplayBuffer(CAPACITY, (2,))
        try:
            for i in range(n_added):
                buf.add(*(v[i] for v in rows.values()))
            return set(buf.sample(DRAWS, np.random.default_rng(0)).reward.tolist())
        finally:
            buf.close()
    buf = ReplayBuffer(CAPACITY, (2,))
    for i in range(n_added):
        buf.add(*(v[i] for v in rows.values()))
    return set(buf.sample(DRAWS, np.random.default_rng(0)).reward.tolist())


@pytest.mark.parametrize("n_added", [1, 3, CAPACITY, CAPACITY + 3])
@pytest.mark.parametrize("kind", ["numpy", "shared", "jax"])
def test_sample_reaches_every_stored_transition_and_nothing_else(kind: str, n_added: int) -> None:
    stored = {float(r) for r in range(max(1, n_added - CAPACITY + 1), n_added + 1)}
    got = _sampled_rewards(kind, n_added)
    assert got <= stored, f"{kind} buffer sampled transitions it does not hold: {got - stored}"
    assert got == stored, (
        f"{kind} buffer never sampled stored transitions {sorted(stored - got)} in {DRAWS} "
        f"draws (after {n_added} adds, capacity {CAPACITY}): its sampling range is off by one")
