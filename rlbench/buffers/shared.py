"""A replay buffer in shared memory, written by many actor processes and sampled by a learner.

Same contract as `rlbench.buffers.ReplayBuffer` (`add`, `add_batch`, `sample -> Batch`,
`len`, `capacity`, `stats()`, the same validation and the same buffer faults) plus one
column: the policy version that produced each transition.

Concurrency: one process-shared lock guards the write cursor *and* the slot contents. A
writer validates outside the lock, then holds it for the copy of its (batch of)
transition(s) and the counter update; the learner holds it while it gathers a batch. So a
reader never sees a half-written transition and two writers never get the same slot, on any
CPU memory model (the semaphore is a full barrier). Copies are a few microseconds, so the
lock is cheap next to an env step plus a forward pass. Lock waits time out with a clear error
instead of hanging if a process died while holding it.

Lifetime: the creating process owns the segment. `with SharedReplayBuffer(...) as buf:` (or
`buf.close()` in a `finally`) removes it, and `unlink()` removes the name early, once every
process has attached; a finalizer removes it at interpreter exit as a
last resort, and multiprocessing's resource tracker removes it if the owner is killed.
Pickling a buffer (e.g. as a `Process` argument under spawn) sends the segment name; the
child attaches to the same memory and calls `close()` when done.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import numpy as np

from rlbench.buffers.numpy_buffer import (
    FIELDS,
    ReplayBuffer,
    _as_checked,
    buffer_layout,
    check_batch,
)
from rlbench.faults import active_faults
from rlbench.types import Batch

SEGMENT_PREFIX = "rlbench"
"""Every segment is named `<prefix>_<creator pid>_<random>`, so leaks are easy to find in /dev/shm."""

LOCK_TIMEOUT_S = 30.0
"""A lock held this long means its holder died mid-write: raise instead of waiting forever."""

Layout = Mapping[str, tuple[tuple[int, ...], Any]]


def _align(n: int, to: int = 64) -> int:
    return (n + to - 1) // to * to


def sweep_orphan_segments(prefix: str = SEGMENT_PREFIX, shm_dir: str = "/dev/shm") -> list[str]:
    """Unlink segments named ``<prefix>_<pid>_*`` whose creating process is gone; return
    their names. Every exit path of a live trainer frees its segments; only a SIGKILL of the
    whole process group (a timed-out test, a mutant run) can leave them, since it also kills
    multiprocessing's resource tracker. A segment whose pid is alive is never touched."""
    removed = []
    for path in Path(shm_dir).glob(f"{prefix}_*_*"):
        pid = path.name[len(prefix) + 1:].split("_", 1)[0]
        if not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        try:
            path.unlink()
        except FileNotFoundError:  # someone else swept it first
            continue
        removed.append(path.name)
    return removed


class SharedArrays:
    """Named numpy arrays laid out in one POSIX shared-memory segment.

    `SharedArrays(layout)` creates and owns a zero-filled segment; unpickling (or
    `SharedArrays.attach(name, layout)`) maps the same memory in another process.
    """

    def __init__(self, layout: Layout, *, _name: str | None = None, prefix: str = SEGMENT_PREFIX):
        self.layout = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in layout.items()}
        offsets, size = {}, 0
        for key, (shape, dtype) in self.layout.items():
            offsets[key] = size
            size = _align(size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        self.owner = _name is None
        if self.owner:
            name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=max(size, 1))
        else:
            self._shm = shared_memory.SharedMemory(name=_name)
        self.name = self._shm.name
        self.arrays: dict[str, np.ndarray] = {
            key: np.ndarray(shape, dtype, buffer=self._shm.buf, offset=offsets[key])
            for key, (shape, dtype) in self.layout.items()
        }
        # Owner: unlink at garbage collection / interpreter exit if nobody did it explicitly.
        self._finalizer = weakref.finalize(self, _release, self._shm, self.owner)

    @classmethod
    def attach(cls, name: str, layout: Layout) -> SharedArrays:
        return cls(layout, _name=name)

    def __reduce__(self):
        return (SharedArrays.attach, (self.name, self.layout))

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]

    def close(self) -> None:
        """Unmap this process's view; the owner also unlinks the segment. Idempotent."""
        self.arrays = {}
        self._finalizer()

    def unlink(self) -> None:
        """Owner only: remove the segment's name now. Processes that already attached keep
        the memory (the OS frees it when the last one unmaps), and nothing is left in
        /dev/shm even if every process is then SIGKILLed. Nobody can attach afterwards."""
        if self.owner:
            try:
                self._shm.unlink()
            except FileNotFoundError:
                pass


def _release(shm: shared_memory.SharedMemory, unlink: bool) -> None:
    try:
        shm.close()
    except BufferError:  # a numpy view still exists somewhere; the mapping dies with it
        pass
    if unlink:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass


class SharedReplayBuffer:
    """Fixed-capacity FIFO of transitions in shared memory, safe for concurrent writers.

    Behaves like `ReplayBuffer` (validation before writing, uniform sampling with replacement
    from filled slots only, `stats()`), and draws the same indices from the same `rng`.
    Each transition also stores `version`: the policy version that chose its action.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...] = (),
        obs_dtype: Any = np.float32,
        action_dtype: Any = None,
        faults: Iterable[str] = (),
        *,
        ctx: Any = None,
        _attach: tuple[SharedArrays, Any] | None = None,
    ) -> None:
        self.capacity, self._shapes, self._dtypes = buffer_layout(
            capacity, obs_shape, action_shape, obs_dtype, action_dtype
        )
        self.obs_shape, self.action_shape = self._shapes["obs"], self._shapes["action"]
        self._faults = tuple(sorted(active_faults(faults)))
        if _attach is None:
            layout = {k: ((self.capacity, *self._shapes[k]), self._dtypes[k]) for k in FIELDS}
            layout["version"] = ((self.capacity,), np.int64)
            layout["header"] = ((3,), np.int64)  # pos, size, total_writes
            self._segment = SharedArrays(layout)
            ctx = ctx or multiprocessing.get_context("spawn")
            self._lock = ctx.Lock()
        else:
            self._segment, self._lock = _attach
        self._data = {k: self._segment[k] for k in FIELDS}
        self._version = self._segment["version"]
        self._header = self._segment["header"]
        # Decided once, here: the clean path carries no fault checks.
        if "buffer-drops-writes" in self._faults:
            self._store = self._store_into_copy
        if "sample-unfilled-slots" in self._faults:
            self._sample_high = lambda: self.capacity

    # -- sharing ------------------------------------------------------------------------
    def __reduce__(self):
        args = (self.capacity, self.obs_shape, self.action_shape, self._dtypes["obs"],
                self._dtypes["action"], self._faults)
        return (_attach_buffer, (args, self._segment, self._lock))

    @property
    def segment_name(self) -> str:
        return self._segment.name

    def close(self) -> None:
        """Detach this process (and unlink the segment if this process created it)."""
        self._data, self._version, self._header = {}, None, None
        self._segment.close()

    def unlink(self) -> None:
        """Remove the segment's name once every process has attached (see `SharedArrays`)."""
        self._segment.unlink()

    def __enter__(self) -> SharedReplayBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise RuntimeError(
                f"shared replay buffer lock not released for {LOCK_TIMEOUT_S:.0f} s: "
                "a process probably died while writing"
            )
        try:
            yield
        finally:
            self._lock.release()

    # -- writing ------------------------------------------------------------------------
    def add(self, obs, action, reward, next_obs, terminated, truncated, version: int = 0) -> None:
        """Append one transition produced by policy `version` (overwrites the oldest when full)."""
        values = dict(zip(FIELDS, (obs, action, reward, next_obs, terminated, truncated)))
        checked = {k: _as_checked(k, v, self._shapes[k], self._dtypes[k])[None]
                   for k, v in values.items()}
        versions = np.array([version], np.int64)
        with self._locked():
            pos = int(self._header[0])
            self._store(np.array([pos]), checked, versions)
            self._advance(1)

    def add_batch(self, obs, action, reward, next_obs, terminated, truncated,
                  version: int | np.ndarray = 0) -> None:
        """Append n transitions given as arrays with a leading axis n (one lock hold)."""
        values = dict(zip(FIELDS, (obs, action, reward, next_obs, terminated, truncated)))
        n, checked = check_batch(self._shapes, self._dtypes, values)
        versions = np.broadcast_to(np.asarray(version, np.int64), (n,))
        if n == 0:
            return
        skip = max(0, n - self.capacity)  # only the newest `capacity` survive a FIFO anyway
        if skip:
            checked = {k: v[skip:] for k, v in checked.items()}
            versions, n = versions[skip:], self.capacity
        with self._locked():
            self._advance(skip)  # the survivors land where n single adds would put them
            pos = int(self._header[0])
            self._store((pos + np.arange(n)) % self.capacity, checked, versions)
            self._advance(n)

    def _store(self, idx: np.ndarray, values: dict[str, np.ndarray], versions: np.ndarray) -> None:
        for k, v in values.items():
            self._data[k][idx] = v
        self._version[idx] = versions

    def _store_into_copy(self, idx: np.ndarray, values: dict[str, np.ndarray],
                         versions: np.ndarray) -> None:
        # FAULT buffer-drops-writes: the write lands in a temporary copy; storage stays zero.
        for k, v in values.items():
            self._data[k].copy()[idx] = v
        self._version.copy()[idx] = versions

    def _advance(self, n: int) -> None:  # caller holds the lock
        h = self._header
        h[0] = (h[0] + n) % self.capacity
        h[1] = min(h[1] + n, self.capacity)
        h[2] += n

    # -- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._header[1])

    @property
    def _size(self) -> int:  # the name `ReplayBuffer.stats` reads
        return int(self._header[1])

    @property
    def total_writes(self) -> int:
        """Transitions ever added (by every process)."""
        return int(self._header[2])

    def _sample_high(self) -> int:
        return int(self._header[1])

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform indices of filled slots (with replacement). The caller holds the lock
        if the result must still be valid when it reads them."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._header[1] == 0:
            raise ValueError("cannot sample from an empty replay buffer (no transitions added yet)")
        return rng.integers(0, self._sample_high(), size=batch_size)

    def get(self, idx: np.ndarray) -> Batch:
        """Copies of the transitions at slots `idx`."""
        with self._locked():
            return Batch(*(self._data[k][idx] for k in FIELDS))

    def versions(self, idx: np.ndarray) -> np.ndarray:
        """Policy versions of the transitions at slots `idx`."""
        with self._locked():
            return self._version[idx]

    def sample_with_versions(self, batch_size: int, rng: np.random.Generator) -> tuple[Batch, np.ndarray]:
        """`sample` plus the policy version of each sampled transition."""
        with self._locked():
            idx = self.sample_indices(batch_size, rng)
            # Fancy indexing copies, so the batch stays whole after the lock is released.
            return Batch(*(self._data[k][idx] for k in FIELDS)), self._version[idx]

    def sample(self, batch_size: int, rng: np.random.Generator) -> Batch:
        """A `Batch` of `batch_size` transitions drawn uniformly from the filled slots."""
        return self.sample_with_versions(batch_size, rng)[0]

    def stats(self) -> dict[str, float | int]:
        """The numpy buffer's diagnostics plus the range of stored policy versions."""
        with self._locked():
            # Same diagnostics as the numpy buffer, computed by its code on our arrays.
            out = ReplayBuffer.stats(self)  # type: ignore[arg-type]
            n = out["size"]
            if n:
                out |= {"version_min": int(self._version[:n].min()),
                        "version_max": int(self._version[:n].max())}
        return out


def _attach_buffer(args: tuple, segment: SharedArrays, lock: Any) -> SharedReplayBuffer:
    capacity, obs_shape, action_shape, obs_dtype, action_dtype, faults = args
    return SharedReplayBuffer(capacity, obs_shape, action_shape, obs_dtype, action_dtype, faults,
                              _attach=(segment, lock))
