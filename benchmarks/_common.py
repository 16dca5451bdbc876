"""Helpers shared by the suites: skipping what a commit lacks, thread limits, waiting for results,
and one adapter over the three replay buffers so a suite can time them side by side.

No benchmark names live here (asv collects ``time_``/``track_``/``peakmem_`` attributes only).
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

os.environ.setdefault("MUJOCO_GL", "disable")

THREADS = int(os.environ.get("RLBENCH_BENCH_THREADS", "1"))
"""Intra-op threads for torch and XLA (0 = library defaults). One thread by default: numbers on a
shared or small machine stay steadier, and rlbench and its peers get the same budget. For XLA
this is --xla_cpu_multi_thread_eigen=false, which jaxlib 0.10.2 honours only in part: its
matrix products still use a second thread (CPU ≈ 1.8× wall measured in the SAC update)."""

if THREADS == 1 and "jax" not in sys.modules:
    # Must be set before JAX starts its CPU backend; torch gets set_num_threads in setup.
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
    ).strip()


def require(module: str) -> ModuleType:
    """Import `module`; if it does not exist at this commit (or a peer library is not installed),
    raise NotImplementedError, which asv reports as "skipped" instead of failed.

    Any other import error (a module that exists but is broken) propagates and fails the run.
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise NotImplementedError(f"{module} is not available here: {exc}") from exc
        raise


def require_trainer(algo: str) -> ModuleType:
    """The trainer module registered for `algo`, or asv's skip when it has not landed yet."""
    trainers = require("rlbench.trainers")
    if algo not in trainers.TRAINERS:
        raise NotImplementedError(f"no trainer registered for {algo!r} at this commit")
    return require(trainers.TRAINERS[algo].module)


def result_or_skip_reason(run: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`run(*args, **kwargs)`, or why it was skipped (the text of its NotImplementedError).

    For `setup_cache`, which runs every parameter's work at once: one missing trainer or peer
    must not skip the rest, so its reason is stored and `skip_if_missing` raises it again in
    that parameter's `setup`, where asv reports it as skipped.
    """
    try:
        return run(*args, **kwargs)
    except NotImplementedError as exc:
        return str(exc)


def skip_if_missing(*results: Any) -> None:
    """Re-raise the skip stored by `result_or_skip_reason` for any of `results`."""
    for result in results:
        if isinstance(result, str):
            raise NotImplementedError(result)


def limit_threads() -> None:
    """Apply THREADS to torch (if installed); XLA was limited at import time."""
    if THREADS > 0 and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(THREADS)


def ready(value: Any) -> Any:
    """Block until `value` (any pytree of JAX arrays / torch tensors) is computed.

    JAX dispatches asynchronously and CUDA kernels run asynchronously, so a timer that stops
    before this would measure the dispatch, not the work.
    """
    if "jax" in sys.modules:
        sys.modules["jax"].block_until_ready(value)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    return value


def random_transitions(
    n: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...] = (), seed: int = 0
) -> dict[str, np.ndarray]:
    """`n` valid transitions with realistic dtypes (discrete actions when `action_shape` is ())."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n + 1, *obs_shape), dtype=np.float32)
    if action_shape == ():
        action = rng.integers(0, 2, size=n)
    else:
        action = rng.uniform(-1, 1, size=(n, *action_shape)).astype(np.float32)
    return {
        "obs": obs[:-1],
        "action": action,
        "reward": rng.standard_normal(n, dtype=np.float32),
        "next_obs": obs[1:],
        "terminated": rng.random(n) < 0.01,
        "truncated": rng.random(n) < 0.001,
    }


class BufferAdapter:
    """One calling convention over the numpy, shared-memory and JAX buffers.

    ``add_batch(t)`` appends a dict of arrays; ``sample(batch_size)`` returns a ready batch.
    Each kind is imported lazily, so a kind that has not landed is skipped, not failed.
    """

    KINDS = ("numpy", "shared", "jax")

    def __init__(
        self, kind: str, capacity: int, obs_shape: tuple[int, ...], action_shape: tuple[int, ...] = ()
    ) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown buffer kind {kind!r}; known: {', '.join(self.KINDS)}")
        self.kind = kind
        self._rng = np.random.default_rng(0)
        getattr(self, f"_init_{kind}")(capacity, tuple(obs_shape), tuple(action_shape))

    # numpy: the reference ring buffer ------------------------------------------------
    def _init_numpy(self, capacity: int, obs_shape: tuple, action_shape: tuple) -> None:
        buffers = require("rlbench.buffers")
        self.buffer = buffers.ReplayBuffer(capacity, obs_shape, action_shape)
        self.add_batch = lambda t: self.buffer.add_batch(**t)
        self.sample = lambda batch_size: self.buffer.sample(batch_size, self._rng)

    # shared: the multi-process ring buffer (same method contract as numpy) -------------
    def _init_shared(self, capacity: int, obs_shape: tuple, action_shape: tuple) -> None:
        shared = require("rlbench.buffers.shared")
        self.buffer = shared.SharedReplayBuffer(capacity, obs_shape, action_shape)
        self.add_batch = lambda t: self.buffer.add_batch(**t)
        self.sample = lambda batch_size: self.buffer.sample(batch_size, self._rng)

    # jax: functional state + jitted pure functions, as the SAC trainer uses it ----------
    def _init_jax(self, capacity: int, obs_shape: tuple, action_shape: tuple) -> None:
        jax_buffer = require("rlbench.buffers.jax_buffer")
        import jax

        from rlbench.types import Batch

        buf = jax_buffer.JaxReplayBuffer(capacity, obs_shape, action_shape)
        self.buffer = buf
        # init() may hand out one shared zeros buffer for equal-shaped fields, which XLA refuses
        # to donate twice: give every field its own storage first.
        self.state = jax.tree.map(lambda x: x.copy(), buf.init())
        # Donating the state lets XLA write in place instead of copying `capacity` rows per add.
        add = jax.jit(buf.add_batch, donate_argnums=0)
        sample = jax.jit(buf.sample, static_argnums=1)
        self._key = jax.random.key(0)

        def add_batch(t: dict[str, np.ndarray]) -> None:
            self.state = ready(add(self.state, Batch(**t)))

        def sample_batch(batch_size: int) -> Any:
            self._key, key = jax.random.split(self._key)
            return ready(sample(self.state, batch_size, key))

        self.add_batch = add_batch
        self.sample = sample_batch

    def fill(self, n: int, transitions: dict[str, np.ndarray], chunk: int = 10_000) -> None:
        """Append the `n` rows of `transitions` in chunks (what a trainer does over time)."""
        for start in range(0, n, chunk):
            self.add_batch({k: v[start : start + chunk] for k, v in transitions.items()})

    def close(self) -> None:
        """Release the shared-memory segment (the other kinds are plain garbage)."""
        if self.kind == "shared":
            self.buffer.close()

    def __len__(self) -> int:
        if self.kind == "jax":
            return int(self.state.size)
        return len(self.buffer)


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and its finished children (actor processes).

    On a shared machine wall time mostly measures the other tenants; CPU time measures the
    work. With one intra-op thread (THREADS) the two agree on an idle machine.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """(fn(), wall seconds) with the result made ready before the clock stops."""
    start = time.perf_counter()
    out = ready(fn())
    return out, time.perf_counter() - start
