"""A numpy ring buffer: validated writes, samples only from filled slots, self-diagnostics."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from rlbench.faults import active_faults
from rlbench.types import Batch

FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")


def _as_checked(name: str, value: Any, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """`value` as an array of `shape`, castable to `dtype` without changing its kind, finite."""
    arr = np.asarray(value)
    if arr.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
    if dtype == np.bool_ and arr.dtype != np.bool_:
        # 0/1 integers are a common way to pass flags; anything else is a bug.
        if not (np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all()):
            raise ValueError(f"{name}: expected booleans, got {arr.dtype} values")
    elif not np.can_cast(arr.dtype, dtype, casting="same_kind"):
        raise ValueError(f"{name}: dtype {arr.dtype} cannot be cast safely to {np.dtype(dtype)}")
    if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return arr


def check_batch(
    shapes: dict[str, tuple[int, ...]], dtypes: dict[str, np.dtype], values: dict[str, Any]
) -> tuple[int, dict[str, np.ndarray]]:
    """Rows n and every field of an n-row batch checked by `_as_checked` (nothing written)."""
    reward = values["reward"]
    if not np.ndim(reward):
        raise ValueError("add_batch: reward must have a leading batch axis")
    n = len(np.asarray(reward).reshape(-1))
    return n, {k: _as_checked(k, v, (n, *shapes[k]), dtypes[k]) for k, v in values.items()}


def buffer_layout(
    capacity: int,
    obs_shape: tuple[int, ...],
    action_shape: tuple[int, ...],
    obs_dtype: Any,
    action_dtype: Any,
    index_dtype: Any = np.int64,
) -> tuple[int, dict[str, tuple[int, ...]], dict[str, np.dtype]]:
    """Validated capacity and per-field row shapes and dtypes, shared by every buffer backend.

    `action_dtype=None` picks `index_dtype` for a discrete action (shape ``()``, an index)
    and float32 for a continuous action vector.
    """
    if int(capacity) < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    obs_shape, action_shape = tuple(obs_shape), tuple(action_shape)
    if action_dtype is None:
        action_dtype = index_dtype if action_shape == () else np.float32
    shapes = {"obs": obs_shape, "action": action_shape, "reward": (), "next_obs": obs_shape,
              "terminated": (), "truncated": ()}
    dtypes = {"obs": obs_dtype, "action": action_dtype, "reward": np.float32,
              "next_obs": obs_dtype, "terminated": np.bool_, "truncated": np.bool_}
    return int(capacity), shapes, {k: np.dtype(v) for k, v in dtypes.items()}


class ReplayBuffer:
    """Fixed-capacity FIFO of transitions in preallocated numpy arrays.

    ``add``/``add_batch`` validate everything before writing anything, so a rejected write
    leaves the buffer unchanged. ``sample`` draws uniformly, with replacement, from the
    filled slots only. ``stats()`` tells whether the buffer is really filling.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...] = (),
        obs_dtype: Any = np.float32,
        action_dtype: Any = None,
        faults: Iterable[str] = (),
    ) -> None:
        self.capacity, self._shapes, self._dtypes = buffer_layout(
            capacity, obs_shape, action_shape, obs_dtype, action_dtype
        )
        self.obs_shape, self.action_shape = self._shapes["obs"], self._shapes["action"]
        self._data = {
            k: np.zeros((self.capacity, *self._shapes[k]), self._dtypes[k]) for k in FIELDS
        }
        self._pos = 0
        self._size = 0
        self.total_writes = 0
        faults = active_faults(faults)
        # Decided once, here: the clean path carries no fault checks.
        if "buffer-drops-writes" in faults:
            self._store = self._store_into_copy
        if "sample-unfilled-slots" in faults:
            self._sample_high = lambda: self.capacity

    # -- writing -------------------------------------------------------------------------
    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Append one transition (overwrites the oldest when full)."""
        values = dict(zip(FIELDS, (obs, action, reward, next_obs, terminated, truncated)))
        checked = {k: _as_checked(k, v, self._shapes[k], self._dtypes[k]) for k, v in values.items()}
        self._store(np.array([self._pos]), {k: v[None] for k, v in checked.items()})
        self._advance(1)

    def add_batch(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        """Append n transitions given as arrays with a leading axis n."""
        values = dict(zip(FIELDS, (obs, action, reward, next_obs, terminated, truncated)))
        n, checked = check_batch(self._shapes, self._dtypes, values)
        if n == 0:
            return
        if n > self.capacity:  # only the newest `capacity` survive; land them where n adds would
            skip = n - self.capacity
            checked = {k: v[skip:] for k, v in checked.items()}
            self._advance(skip)
            n = self.capacity
        self._store((self._pos + np.arange(n)) % self.capacity, checked)
        self._advance(n)

    def _store(self, idx: np.ndarray, values: dict[str, np.ndarray]) -> None:
        for k, v in values.items():
            self._data[k][idx] = v

    def _store_into_copy(self, idx: np.ndarray, values: dict[str, np.ndarray]) -> None:
        # FAULT buffer-drops-writes: the write lands in a temporary copy; storage stays zero.
        for k, v in values.items():
            self._data[k].copy()[idx] = v

    def _advance(self, n: int) -> None:
        self._pos = (self._pos + n) % self.capacity
        self._size = min(self._size + n, self.capacity)
        self.total_writes += n

    # -- reading -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    def _sample_high(self) -> int:
        return self._size

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform indices of filled slots (with replacement)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._size == 0:
            raise ValueError("cannot sample from an empty replay buffer (no transitions added yet)")
        return rng.integers(0, self._sample_high(), size=batch_size)

    def get(self, idx: np.ndarray) -> Batch:
        return Batch(*(self._data[k][idx] for k in FIELDS))

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A `Batch` of `batch_size` transitions drawn uniformly from the filled slots."""
        return self.get(self.sample_indices(batch_size, rng))

    def stats(self) -> dict[str, float | int]:
        """Size, capacity, writes and content diagnostics over the filled slots."""
        n = self._size
        out: dict[str, float | int] = {
            "size": n, "capacity": self.capacity, "total_writes": self.total_writes,
        }
        if n:
            obs = self._data["obs"][:n].reshape(n, -1)
            reward = self._data["reward"][:n]
            out |= {
                "zero_obs_fraction": float(np.mean(~obs.any(axis=1))),
                "reward_min": float(reward.min()),
                "reward_max": float(reward.max()),
                "reward_mean": float(reward.mean()),
                "terminated_fraction": float(self._data["terminated"][:n].mean()),
                "truncated_fraction": float(self._data["truncated"][:n].mean()),
            }
        return out
