"""A device-resident, functional replay buffer for JAX trainers.

The buffer is a pytree (`BufferState`) plus pure functions over it, so writing and sampling
can live inside one jitted `lax.scan` with the gradient updates (no host round trip per
batch). `JaxReplayBuffer` only fixes shapes/dtypes and picks those functions once, at
construction — which is also where the buffer faults are decided, so the clean path never
tests a flag inside jitted code.

Same contract as the numpy `ReplayBuffer`, in functional form:
``add(state, ...) -> state``, ``add_batch(state, batch, n) -> state``,
``sample(state, batch_size, key) -> Batch``, ``size(state)``, ``capacity``, ``stats(state)``.
Samples come only from filled slots. Shape errors raise `ValueError` when traced; outside
jit, non-finite values and sampling an empty buffer raise `ValueError` too (inside jit the
caller validates on the host — the SAC trainer checks every env transition before staging).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rlbench.buffers.numpy_buffer import buffer_layout
from rlbench.faults import active_faults
from rlbench.types import Batch

FIELDS = Batch._fields


class BufferState(NamedTuple):
    """Everything the buffer holds, as arrays (a pytree: jit/scan/donate friendly)."""

    data: Batch  # each field [capacity, *shape]
    pos: jax.Array  # int32 [], next slot to write
    size: jax.Array  # int32 [], filled slots = min(writes, capacity)
    total_writes: jax.Array  # int32 [], transitions ever added (diagnostic)


def _concrete(x: Any) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _write_in_place(data: Batch, idx: jax.Array, batch: Batch, dtypes: Batch) -> Batch:
    return Batch(
        *(field.at[idx].set(jnp.asarray(new, d), mode="drop") for field, new, d in zip(data, batch, dtypes))
    )


def _write_into_copy(data: Batch, idx: jax.Array, batch: Batch, dtypes: Batch) -> Batch:
    # FAULT buffer-drops-writes: the write goes into a copy that is thrown away; the
    # counters still advance, so the buffer "fills" with zeros.
    _discarded = _write_in_place(data, idx, batch, dtypes)
    return data


class JaxReplayBuffer:
    """Shapes, dtypes and the (fault-aware) pure functions of one functional ring buffer.

    >>> buf = JaxReplayBuffer(1000, obs_shape=(5,), action_shape=(1,))
    >>> state = buf.init()
    >>> state = buf.add(state, obs, action, reward, next_obs, terminated, truncated)
    >>> batch = buf.sample(state, 256, key)           # also fine inside jax.jit / lax.scan
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...] = (),
        obs_dtype: Any = jnp.float32,
        action_dtype: Any = None,
        faults: Iterable[str] = (),
    ) -> None:
        capacity, shapes, dtypes = buffer_layout(  # discrete actions: int32 (JAX's default int)
            capacity, obs_shape, action_shape, obs_dtype, action_dtype, index_dtype=np.int32
        )
        self.capacity = capacity
        self.obs_shape, self.action_shape = shapes["obs"], shapes["action"]
        self.shapes = Batch(**shapes)
        self.dtypes = Batch(**{k: jnp.dtype(d) for k, d in dtypes.items()})
        faults = active_faults(faults)
        self.faults = faults & {"buffer-drops-writes", "sample-unfilled-slots"}
        # Decided once, here: the clean functions carry no fault checks.
        if "buffer-drops-writes" in faults:
            self._write = _write_into_copy
        if "sample-unfilled-slots" in faults:
            self._sample_high = lambda state: jnp.int32(self.capacity)

    # Equal layouts hash equal, so a buffer can be a static argument of jax.jit and two
    # runs with the same layout share compiled functions.
    def _layout(self) -> tuple:
        return (self.capacity, self.shapes, self.dtypes, self.faults)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JaxReplayBuffer) and self._layout() == other._layout()

    def __hash__(self) -> int:
        return hash(self._layout())

    # -- state ---------------------------------------------------------------------------
    def init(self) -> BufferState:
        """An empty buffer on JAX's default device (zeros everywhere)."""
        data = Batch(
            *(jnp.zeros((self.capacity, *s), d) for s, d in zip(self.shapes, self.dtypes))
        )
        # Three distinct scalars: a donated state must not hold one buffer twice.
        return BufferState(data, *(jnp.zeros((), jnp.int32) for _ in range(3)))

    @staticmethod
    def size(state: BufferState) -> jax.Array:
        """Filled slots (the functional `len`)."""
        return state.size

    # -- writing -------------------------------------------------------------------------
    def add(self, state: BufferState, obs, action, reward, next_obs, terminated, truncated) -> BufferState:
        """Append one transition (overwrites the oldest when full)."""
        one = Batch(obs, action, reward, next_obs, terminated, truncated)
        return self.add_batch(state, jax.tree.map(lambda x: jnp.asarray(x)[None], one))

    def add_batch(self, state: BufferState, batch: Batch, n: Any = None) -> BufferState:
        """Append the first `n` rows of `batch` (all rows when `n` is None).

        `n` may be a traced integer: rows past it are dropped by the scatter (`mode="drop"`),
        so one compiled function serves a partly filled staging area.
        """
        rows = self._check(batch)
        if rows > self.capacity:
            raise ValueError(f"add_batch: {rows} rows exceed the capacity {self.capacity}")
        n = jnp.asarray(rows if n is None else n, jnp.int32)
        offsets = jnp.arange(rows, dtype=jnp.int32)
        # Rows >= n get an out-of-range index, which the "drop" scatter ignores.
        idx = jnp.where(offsets < n, (state.pos + offsets) % self.capacity, self.capacity)
        data = self._write(state.data, idx, batch, self.dtypes)
        return BufferState(
            data,
            (state.pos + n) % self.capacity,
            jnp.minimum(state.size + n, self.capacity),
            state.total_writes + n,
        )

    def _check(self, batch: Batch) -> int:
        """Validate shapes (always) and finiteness (when values are concrete); return rows."""
        if not isinstance(batch, Batch):
            batch = Batch(*batch)
        rows = int(np.shape(batch.reward)[0]) if np.ndim(batch.reward) else -1
        if rows < 0:
            raise ValueError("add_batch: reward must have a leading batch axis")
        for name, value, shape in zip(FIELDS, batch, self.shapes):
            if tuple(np.shape(value)) != (rows, *shape):
                raise ValueError(f"{name}: expected shape {(rows, *shape)}, got {np.shape(value)}")
            if _concrete(value) and np.asarray(value).dtype.kind in "fc":
                if not np.isfinite(np.asarray(value)).all():
                    raise ValueError(f"{name}: contains NaN or inf")
        return rows

    _write = staticmethod(_write_in_place)

    # -- reading -------------------------------------------------------------------------
    def _sample_high(self, state: BufferState) -> jax.Array:
        return state.size

    def sample_indices(self, state: BufferState, batch_size: int, key: jax.Array) -> jax.Array:
        """Uniform indices of filled slots, with replacement."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if _concrete(state.size) and int(state.size) == 0:
            raise ValueError("cannot sample from an empty replay buffer (no transitions added yet)")
        return jax.random.randint(key, (batch_size,), 0, self._sample_high(state))

    def sample(self, state: BufferState, batch_size: int, key: jax.Array) -> Batch:
        """A `Batch` of `batch_size` transitions drawn uniformly from the filled slots."""
        idx = self.sample_indices(state, batch_size, key)
        return Batch(*(field[idx] for field in state.data))

    def stats(self, state: BufferState) -> dict[str, float | int]:
        """Size, capacity, writes and content diagnostics over the filled slots (host values)."""
        out: dict[str, float | int] = {
            "size": int(state.size), "capacity": self.capacity,
            "total_writes": int(state.total_writes),
        }
        if out["size"]:
            out |= {k: float(v) for k, v in _content_stats(state).items()}
        return out


@jax.jit
def _content_stats(state: BufferState) -> dict[str, jax.Array]:
    """Masked reductions over filled slots (one compiled function for any fill level)."""
    filled = jnp.arange(state.data.reward.shape[0]) < state.size
    n = jnp.maximum(state.size, 1)
    obs = state.data.obs.reshape(filled.shape[0], -1)

    def mean(x: jax.Array) -> jax.Array:
        return jnp.sum(jnp.where(filled, x, 0.0)) / n

    reward = state.data.reward
    return {
        "zero_obs_fraction": mean(~jnp.any(obs != 0, axis=1)),
        "reward_min": jnp.min(jnp.where(filled, reward, jnp.inf)),
        "reward_max": jnp.max(jnp.where(filled, reward, -jnp.inf)),
        "reward_mean": mean(reward),
        "terminated_fraction": mean(state.data.terminated),
        "truncated_fraction": mean(state.data.truncated),
    }
