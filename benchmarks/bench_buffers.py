"""Replay buffer add/sample across the numpy, shared-memory and JAX buffers, and peak memory of
a large one. Observations are 5 floats (dm_control cartpole) unless stated."""

from __future__ import annotations

from benchmarks._common import BufferAdapter, random_transitions

KINDS = list(BufferAdapter.KINDS)
OBS_SHAPE = (5,)
ACTION_SHAPE = (1,)
CAPACITY = 100_000


class BufferSample:
    """`sample(batch_size)` from a full buffer: once per gradient step in every trainer."""

    params = [KINDS, [32, 256, 1024]]
    param_names = ["buffer", "batch_size"]

    def setup(self, kind: str, batch_size: int) -> None:
        self.buffer = BufferAdapter(kind, CAPACITY, OBS_SHAPE, ACTION_SHAPE)
        self.buffer.fill(CAPACITY, random_transitions(CAPACITY, OBS_SHAPE, ACTION_SHAPE))
        self.buffer.sample(batch_size)  # warm-up (compiles the JAX sampler)

    def teardown(self, kind: str, batch_size: int) -> None:
        if hasattr(self, "buffer"):  # setup may have skipped
            self.buffer.close()

    def time_sample(self, kind: str, batch_size: int) -> None:
        self.buffer.sample(batch_size)


class BufferAdd:
    """`add_batch(n)` into a half-full buffer: n=1 is the per-env-step write of the
    single-process trainers, larger n the actors' staged writes."""

    params = [KINDS, [1, 256, 1024]]
    param_names = ["buffer", "rows"]

    def setup(self, kind: str, rows: int) -> None:
        self.buffer = BufferAdapter(kind, CAPACITY, OBS_SHAPE, ACTION_SHAPE)
        self.buffer.fill(CAPACITY // 2, random_transitions(CAPACITY // 2, OBS_SHAPE, ACTION_SHAPE))
        self.rows = random_transitions(rows, OBS_SHAPE, ACTION_SHAPE, seed=1)
        self.buffer.add_batch(self.rows)  # warm-up (compiles the JAX writer for this shape)

    def teardown(self, kind: str, rows: int) -> None:
        if hasattr(self, "buffer"):  # setup may have skipped
            self.buffer.close()

    def time_add_batch(self, kind: str, rows: int) -> None:
        self.buffer.add_batch(self.rows)


class BufferMemory:
    """Peak RSS of building and filling a 1M-transition buffer of 17-float observations
    (dm_control walker-sized): ~140 MB of payload; overhead beyond that is the buffer's."""

    params = [KINDS]
    param_names = ["buffer"]
    timeout = 600

    def setup(self, kind: str) -> None:
        # Import (and skip a missing kind) outside the measured function.
        BufferAdapter(kind, 1, (17,), (6,)).close()

    def peakmem_fill_1m(self, kind: str) -> None:
        capacity = 1_000_000
        buffer = BufferAdapter(kind, capacity, (17,), (6,))
        chunk = random_transitions(50_000, (17,), (6,))
        for _ in range(capacity // 50_000):
            buffer.add_batch(chunk)
        assert len(buffer) == capacity
        buffer.close()
