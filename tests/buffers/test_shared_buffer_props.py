"""Hypothesis law: the shared-memory buffer is observationally the numpy buffer (same
contents, sizes, counts and samples for any sequence of add/add_batch), plus versions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlbench.buffers import ReplayBuffer
from rlbench.buffers.shared import SharedReplayBuffer

pytestmark = pytest.mark.law

writes = st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=12)  # 0 = add()


@given(capacity=st.integers(1, 16), sizes=writes, seed=st.integers(0, 2**16))
def test_shared_buffer_equals_numpy_buffer(capacity: int, sizes: list[int], seed: int) -> None:
    ref = ReplayBuffer(capacity, (3,))
    with SharedReplayBuffer(capacity, (3,)) as buf:
        tag = 0
        for n in sizes:
            m = max(n, 1)
            t = np.arange(tag, tag + m)
            obs = np.repeat(t[:, None], 3, axis=1).astype(np.float32)
            args = (obs, t % 3, t.astype(np.float32), obs + 1, t % 2 == 0, t % 7 == 0)
            if n == 0:
                ref.add(*(a[0] for a in args))
                buf.add(*(a[0] for a in args), version=int(t[0]))
            else:
                ref.add_batch(*args)
                buf.add_batch(*args, version=t)
            tag += m
        assert len(buf) == len(ref) == min(tag, capacity)
        assert buf.total_writes == ref.total_writes == tag
        idx = np.arange(len(ref))
        for x, y in zip(buf.get(idx), ref.get(idx)):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(buf.versions(idx), buf.get(idx).reward.astype(np.int64))
        sb = buf.sample(8, np.random.default_rng(seed))
        for x, y in zip(sb, ref.sample(8, np.random.default_rng(seed))):
            np.testing.assert_array_equal(x, y)
