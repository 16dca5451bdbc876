"""The device-resident functional replay buffer (rlbench.buffers.JaxReplayBuffer)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

pytest.importorskip("jax")  # needs the `jax` extra: skipped where it is not installed

import jax
import jax.numpy as jnp
from hypothesis import given
from hypothesis import strategies as st

from rlbench.buffers import Batch, BufferState, JaxReplayBuffer


def _rows(start: int, n: int, obs_dim: int = 3) -> Batch:
    """n distinct transitions numbered start..start+n-1 (obs = number, reward = number)."""
    k = np.arange(start, start + n, dtype=np.float32)
    return Batch(
        obs=np.repeat(k[:, None], obs_dim, axis=1),
        action=(k[:, None] / 1000.0).astype(np.float32),
        reward=k,
        next_obs=np.repeat(k[:, None] + 0.5, obs_dim, axis=1),
        terminated=(k % 3 == 0),
        truncated=(k % 5 == 0),
    )


def _buffer(capacity: int, **kwargs) -> JaxReplayBuffer:
    return JaxReplayBuffer(capacity, obs_shape=(3,), action_shape=(1,), **kwargs)


def test_jax_buffer_is_exported_lazily() -> None:
    import rlbench.buffers

    assert rlbench.buffers.JaxReplayBuffer is JaxReplayBuffer
    with pytest.raises(AttributeError):
        rlbench.buffers.NoSuchBuffer  # noqa: B018


@pytest.mark.detects("buffer-drops-writes")
def test_jax_buffer_stores_what_was_added() -> None:
    buf = _buffer(8)
    state = buf.init()
    for i in range(1, 6):  # numbers 1..5: no row is all zeros
        row = jax.tree.map(lambda x: x[0], _rows(i, 1))
        state = buf.add(state, *row)
    assert int(buf.size(state)) == 5 and int(state.total_writes) == 5
    np.testing.assert_array_equal(np.asarray(state.data.reward[:5]), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(np.asarray(state.data.obs[:5, 0]), [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(np.asarray(state.data.terminated[:5]), [0, 0, 1, 0, 0])
    stats = buf.stats(state)
    assert stats["zero_obs_fraction"] == 0.0
    assert (stats["reward_min"], stats["reward_max"], stats["reward_mean"]) == (1.0, 5.0, 3.0)
    # Row 3 terminated, row 5 was cut by a time limit: each flag is counted on its own.
    assert (stats["terminated_fraction"], stats["truncated_fraction"]) == pytest.approx((0.2, 0.2))


def test_jax_buffer_add_batch_inside_jit_stores_rows() -> None:
    buf = _buffer(16)
    add = jax.jit(buf.add_batch, donate_argnums=0)
    state = add(buf.init(), _rows(1, 4), 4)
    np.testing.assert_array_equal(np.asarray(state.data.reward[:4]), [1, 2, 3, 4])
    assert buf.stats(state)["zero_obs_fraction"] == 0.0


def test_jax_buffer_add_batch_writes_only_the_first_n_rows() -> None:
    buf = _buffer(6)
    add = jax.jit(buf.add_batch)
    state = add(buf.init(), _rows(1, 4), 2)  # rows 3 and 4 are padding
    assert int(state.size) == 2 and int(state.pos) == 2
    np.testing.assert_array_equal(np.asarray(state.data.reward), [1, 2, 0, 0, 0, 0])
    state = add(state, _rows(3, 4), 4)
    np.testing.assert_array_equal(np.asarray(state.data.reward), [1, 2, 3, 4, 5, 6])


def test_jax_buffer_wraps_around_fifo() -> None:
    buf = _buffer(4)
    state = buf.add_batch(buf.init(), _rows(1, 3))
    state = buf.add_batch(state, _rows(4, 3))  # 1..6 into 4 slots: 5, 6 overwrite 1, 2
    assert int(state.size) == 4 and int(state.pos) == 2 and int(state.total_writes) == 6
    np.testing.assert_array_equal(np.asarray(state.data.reward), [5, 6, 3, 4])


@pytest.mark.detects("sample-unfilled-slots")
def test_jax_buffer_samples_only_filled_slots() -> None:
    buf = _buffer(1000)
    state = buf.add_batch(buf.init(), _rows(1, 10))
    sample = jax.jit(buf.sample, static_argnums=1)
    rewards = np.concatenate(
        [np.asarray(sample(state, 256, jax.random.key(i)).reward) for i in range(4)]
    )
    # 1024 draws from the 10 filled slots: every one is a stored transition, and the draw
    # covers them all (P(some slot missed) < 10 * 0.9^1024 ≈ 1e-46).
    assert set(rewards.tolist()) == set(range(1, 11))


def test_jax_buffer_sample_is_a_consistent_batch() -> None:
    buf = _buffer(50)
    state = buf.add_batch(buf.init(), _rows(1, 30))
    batch = buf.sample(state, 64, jax.random.key(0))
    assert isinstance(batch, Batch)
    assert batch.obs.shape == (64, 3) and batch.action.shape == (64, 1) and batch.reward.shape == (64,)
    # Fields of one row belong to the same transition.
    np.testing.assert_array_equal(np.asarray(batch.obs[:, 0]), np.asarray(batch.reward))
    np.testing.assert_array_equal(np.asarray(batch.next_obs[:, 0]), np.asarray(batch.reward) + 0.5)
    assert batch.terminated.dtype == jnp.bool_


def test_jax_buffer_rejects_bad_input() -> None:
    buf = _buffer(8)
    state = buf.init()
    with pytest.raises(ValueError, match="empty"):
        buf.sample(state, 4, jax.random.key(0))
    bad_obs = _rows(1, 2)._replace(obs=np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="obs: expected shape"):
        buf.add_batch(state, bad_obs)
    nan_reward = _rows(1, 2)._replace(reward=np.array([1.0, np.nan], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        buf.add_batch(state, nan_reward)
    with pytest.raises(ValueError, match="capacity"):
        JaxReplayBuffer(0, obs_shape=(3,))
    with pytest.raises(ValueError, match="exceed the capacity"):
        buf.add_batch(state, _rows(1, 9))
    assert int(state.size) == 0  # functional: the rejected writes changed nothing


def test_jax_buffer_takes_the_edge_sizes() -> None:
    # A batch of exactly `capacity` rows fills the buffer, an empty batch is a no-op and a
    # batch of one can be sampled: the limits are inclusive where the contract says so.
    buf = _buffer(4)
    state = buf.add_batch(buf.init(), _rows(1, 4))
    assert int(state.size) == 4 and int(state.pos) == 0
    np.testing.assert_array_equal(np.asarray(state.data.reward), [1, 2, 3, 4])
    state = buf.add_batch(state, _rows(5, 0))
    assert int(state.size) == 4 and int(state.total_writes) == 4
    one = buf.sample(state, 1, jax.random.key(0))
    assert one.reward.shape == (1,) and float(one.reward[0]) in (1.0, 2.0, 3.0, 4.0)


def test_jax_buffer_equal_layouts_hash_equal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RLBENCH_FAULTS", raising=False)
    # The trainer passes the buffer as a static jit argument: equal layouts share compiles.
    assert _buffer(8) == _buffer(8) and hash(_buffer(8)) == hash(_buffer(8))
    assert _buffer(8) != _buffer(9)
    assert _buffer(8) != _buffer(8, faults=("sample-unfilled-slots",))


def test_jax_buffer_state_is_a_pytree_on_the_default_device() -> None:
    state = _buffer(8).init()
    assert isinstance(state, BufferState)
    leaves = jax.tree.leaves(state)
    assert len(leaves) == 9 and all(leaf.devices() == {jax.devices()[0]} for leaf in leaves)


@functools.cache
def _jitted(capacity: int):
    """One compiled add/sample per capacity (rows padded to `capacity`, `n` traced)."""
    buf = _buffer(capacity)
    return buf, jax.jit(buf.add_batch), jax.jit(buf.sample, static_argnums=1)


@pytest.mark.law
@given(
    capacity=st.sampled_from([1, 4, 7]),
    chunks=st.lists(st.integers(0, 7), min_size=1, max_size=6),
)
def test_jax_buffer_len_and_contents_follow_fifo(capacity: int, chunks: list[int]) -> None:
    """len == min(added, capacity); the stored rewards are exactly the newest `len` added;
    samples come from the stored ones."""
    buf, add, sample = _jitted(capacity)
    state = buf.init()
    added = 0
    for n in chunks:
        n = min(n, capacity)
        state = add(state, _rows(added + 1, capacity), n)
        added += n
    size = int(state.size)
    assert size == min(added, capacity)
    stored = sorted(np.asarray(state.data.reward[:size]).tolist())  # filled slots: [0, size)
    assert stored == list(range(added - size + 1, added + 1))
    if size:
        sampled = np.asarray(sample(state, 32, jax.random.key(added)).reward)
        assert set(sampled.tolist()) <= set(stored)  # sampled ⊆ stored
