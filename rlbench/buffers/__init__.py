"""Replay buffers sharing one contract: `add`, `add_batch`, `sample(batch_size, rng) -> Batch`,
`len()`, `capacity`, `stats()`."""

from rlbench.buffers.numpy_buffer import FIELDS, ReplayBuffer
from rlbench.types import Batch

__all__ = ["FIELDS", "Batch", "ReplayBuffer"]
