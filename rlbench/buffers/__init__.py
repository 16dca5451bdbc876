"""Replay buffers sharing one contract: `add`, `add_batch`, `sample(batch_size, rng) -> Batch`,
`len()`, `capacity`, `stats()`."""

from rlbench.buffers.numpy_buffer import FIELDS, ReplayBuffer
from rlbench.types import Batch

__all__ = ["FIELDS", "Batch", "BufferState", "JaxReplayBuffer", "ReplayBuffer"]

_JAX_NAMES = ("BufferState", "JaxReplayBuffer")


def __getattr__(name: str):
    # The JAX buffer is imported on first use, so torch-only installs never need JAX.
    if name in _JAX_NAMES:
        from rlbench.buffers import jax_buffer

        return getattr(jax_buffer, name)
    raise AttributeError(f"module 'rlbench.buffers' has no attribute {name!r}")
