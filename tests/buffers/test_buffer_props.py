"""Hypothesis laws of the replay buffer, for any capacity and any sequence of adds/samples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlbench.buffers import ReplayBuffer

pytestmark = pytest.mark.law

ops = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(1, 1)),
        st.tuples(st.just("add_batch"), st.integers(0, 12)),
        st.tuples(st.just("sample"), st.integers(1, 64)),
    ),
    max_size=40,
)


@given(capacity=st.integers(1, 16), script=ops, seed=st.integers(0, 2**31 - 1))
def test_buffer_laws_hold_for_any_add_sample_sequence(capacity: int, script, seed: int) -> None:
    """Each transition is tagged with its write number (obs = reward = tag, tags from 1)."""
    buf = ReplayBuffer(capacity, (2,))
    rng = np.random.default_rng(seed)
    written: list[int] = []
    for op, n in script:
        if op == "sample":
            if not written:
                continue
            batch = buf.sample(n, rng)
            live = set(written[-capacity:])
            tags = batch.reward.astype(int)
            # samples ⊆ stored, never an unfilled (zero) slot, fields of one row stay together
            assert set(tags.tolist()) <= live
            np.testing.assert_array_equal(batch.obs[:, 0], tags)
            np.testing.assert_array_equal(batch.next_obs[:, 1], -tags)
            np.testing.assert_array_equal(batch.action, tags % 3)
            continue
        tags = np.arange(len(written) + 1, len(written) + n + 1)
        obs = np.stack([tags, tags], axis=1).astype(np.float32)
        if op == "add":
            buf.add(obs[0], tags[0] % 3, float(tags[0]), -obs[0], False, bool(tags[0] % 2))
        else:
            buf.add_batch(obs, tags % 3, tags.astype(np.float32), -obs,
                          np.zeros(n, bool), tags % 2 == 1)
        written.extend(tags.tolist())
        # len == min(n_added, capacity); FIFO: exactly the newest `capacity` tags are stored
        assert len(buf) == min(len(written), capacity)
        stored = sorted(buf.get(np.arange(len(buf))).reward.astype(int).tolist())
        assert stored == sorted(written[-capacity:])
        assert buf.stats()["total_writes"] == len(written)
