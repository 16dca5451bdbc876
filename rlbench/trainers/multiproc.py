"""Process plumbing for the actor/learner trainer: a weight-publishing channel in shared
memory and a process group that turns any child failure into a parent exception.

Both are independent of the learning algorithm, so they are tested on their own.

* `WeightChannel`: one publisher (the learner) writes a complete set of named arrays, a
  version and epsilon under a process-shared lock; readers (actors) copy them out under the
  same lock, so a reader never gets weights from one version with epsilon from another, or
  half of a tensor. `version` can be peeked without the lock to skip unchanged sets.
* `ProcessGroup`: spawns children with the spawn start method (torch.multiprocessing, so it
  also works with CUDA), sets one torch thread per child by default, relays their messages,
  and raises `ChildProcessFailed` carrying the child's traceback as soon as one fails or dies.
  Leaving the group (normal end, exception, Ctrl-C, SIGTERM) stops every child: stop event,
  then terminate, then kill.
"""

from __future__ import annotations

import contextlib
import gc
import os
import queue
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlbench.buffers.shared import LOCK_TIMEOUT_S, SharedArrays
from rlbench.processes import sigterm_raises


def spawn_context() -> Any:
    """The spawn context of torch.multiprocessing: fork is unsafe with CUDA and with threads."""
    import torch.multiprocessing as tmp

    return tmp.get_context("spawn")


# ---------------------------------------------------------------------------------------
# Weight channel
# ---------------------------------------------------------------------------------------
class WeightChannel:
    """Versioned arrays + epsilon in shared memory, written whole or not at all.

    `template` fixes the names, shapes and dtypes (e.g. a model's state_dict as numpy).
    Every `publish` increments `seq` (-1 before the first); `version` is the publisher's
    label for the weights (the learner's update count) and may repeat when only epsilon
    changed, but never decreases.
    """

    def __init__(self, template: Mapping[str, np.ndarray], ctx: Any = None) -> None:
        if not template:
            raise ValueError("WeightChannel needs at least one array in its template")
        layout = {f"w/{k}": (np.shape(v), np.asarray(v).dtype) for k, v in template.items()}
        layout["meta"] = ((3,), np.float64)  # seq, version, epsilon (ints < 2**53 are exact)
        self._segment = SharedArrays(layout)
        self._lock = (ctx or spawn_context()).Lock()
        self._keys = tuple(template)
        self._meta = self._segment["meta"]
        self._meta[:] = (-1, -1, np.nan)

    def __getstate__(self) -> dict[str, Any]:
        return {"segment": self._segment, "lock": self._lock, "keys": self._keys}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._segment, self._lock, self._keys = state["segment"], state["lock"], state["keys"]
        self._meta = self._segment["meta"]

    @property
    def segment_name(self) -> str:
        return self._segment.name

    def close(self) -> None:
        """Detach this process (and unlink the segment if this process created it)."""
        self._meta = None
        self._segment.close()

    def unlink(self) -> None:
        """Remove the segment's name once every process has attached (see `SharedArrays`)."""
        self._segment.unlink()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._lock.acquire(timeout=LOCK_TIMEOUT_S):
            raise RuntimeError(f"weight channel lock not released for {LOCK_TIMEOUT_S:.0f} s")
        try:
            yield
        finally:
            self._lock.release()

    @property
    def seq(self) -> int:
        """Publications so far minus one, read without the lock: a cheap "anything new?"."""
        return int(self._meta[0])

    @property
    def version(self) -> int:
        """Version of the latest publication (read without the lock)."""
        return int(self._meta[1])

    @property
    def epsilon(self) -> float:
        """Epsilon of the latest publication (read without the lock; NaN before the first)."""
        return float(self._meta[2])

    def publish(self, arrays: Mapping[str, np.ndarray], version: int, epsilon: float) -> None:
        """Write a complete set of arrays with its version and epsilon."""
        if tuple(arrays) != self._keys:
            raise ValueError(f"publish: expected arrays {self._keys}, got {tuple(arrays)}")
        for key, value in arrays.items():
            slot = self._segment[f"w/{key}"]
            if np.shape(value) != slot.shape:
                raise ValueError(f"publish: {key} has shape {np.shape(value)}, expected {slot.shape}")
        if version < self.version:
            raise ValueError(f"publish: version {version} is older than {self.version}")
        with self._locked():
            for key, value in arrays.items():
                self._segment[f"w/{key}"][...] = value
            self._meta[:] = (self._meta[0] + 1, version, epsilon)

    def read_into(self, out: Mapping[str, np.ndarray]) -> tuple[int, int, float]:
        """Copy the latest set into `out` (same keys); return its (seq, version, epsilon)."""
        with self._locked():
            for key in self._keys:
                out[key][...] = self._segment[f"w/{key}"]
            seq, version, epsilon = self._meta
        return int(seq), int(version), float(epsilon)

    def read(self) -> tuple[dict[str, np.ndarray], int, int, float]:
        """Copies of the latest arrays, with their seq, version and epsilon."""
        out = {k: np.empty_like(self._segment[f"w/{k}"]) for k in self._keys}
        return (out, *self.read_into(out))


# ---------------------------------------------------------------------------------------
# Process group
# ---------------------------------------------------------------------------------------
class ChildProcessFailed(RuntimeError):
    """A child process raised or died; the message carries its traceback when it had one."""

    def __init__(self, child: str, summary: str, child_traceback: str | None = None) -> None:
        self.child, self.summary, self.child_traceback = child, summary, child_traceback
        text = f"{child} process failed: {summary}"
        if child_traceback:
            text += f"\n--- traceback in the {child} process ---\n{child_traceback.rstrip()}"
        super().__init__(text)


@dataclass
class Worker:
    """What a child's target receives: its name, a way to report, and the stop signal."""

    name: str
    _queue: Any
    _stop: Any
    _parent_pid: int

    def send(self, kind: str, payload: Any = None) -> None:
        """Send a message to the parent (it reads them in `ProcessGroup.poll`)."""
        self._queue.put((self.name, kind, payload))

    def should_stop(self) -> bool:
        """True once the parent asked to stop, or died (we were re-parented)."""
        return self._stop.is_set() or os.getppid() != self._parent_pid


def _child_main(name: str, target: Callable[..., Any], args: tuple, msg_queue: Any,
                stop: Any, parent_pid: int, torch_threads: int | None) -> None:
    # Ctrl-C reaches the whole foreground process group; the parent decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if torch_threads:
        import torch

        torch.set_num_threads(torch_threads)  # N processes x M threads oversubscribe small boxes
    worker = Worker(name, msg_queue, stop, parent_pid)
    worker.send("started")  # its arguments are unpickled: shared memory is attached
    try:
        result = target(worker, *args)
    except BaseException as exc:  # noqa: BLE001 - everything goes to the parent
        worker.send("error", {"error": f"{type(exc).__name__}: {exc}",
                              "traceback": traceback.format_exc()})
        msg_queue.close()
        msg_queue.join_thread()  # the message is in the pipe before we exit
        gc.freeze()
        sys.exit(1)
    worker.send("done", result)
    # Nothing is left to free that the OS does not take back: frozen objects are skipped by
    # the interpreter's exit-time collections, which over torch's object graph cost
    # 0.4-0.7 s per child (0.1 s frozen), time the parent spends waiting in `stop`.
    gc.freeze()


class ProcessGroup:
    """Children started with `spawn`, watched by `poll`, stopped on leaving the `with` block.

    Inside the `with` block SIGTERM raises `SystemExit(143)` in the parent, so cleanup runs
    for SIGTERM exactly as for Ctrl-C (KeyboardInterrupt) and for errors.
    """

    def __init__(self, torch_threads: int | None = 1, stop_timeout_s: float = 5.0) -> None:
        self.ctx = spawn_context()
        self.torch_threads = torch_threads
        self.stop_timeout_s = stop_timeout_s
        self._queue = self.ctx.Queue()
        self._stop = self.ctx.Event()
        self.procs: dict[str, Any] = {}
        self.results: dict[str, Any] = {}
        self.started: set[str] = set()
        self.ready: set[str] = set()  # children that sent "ready": set up, now running
        self._sigterm: contextlib.AbstractContextManager[None] | None = None

    def __enter__(self) -> ProcessGroup:
        # SIGTERM exits with status 128 + 15 through the same clean-up as an exception.
        self._sigterm = sigterm_raises(lambda signum: SystemExit(128 + signum))
        self._sigterm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self._sigterm is not None:
                self._sigterm.__exit__(None, None, None)
                self._sigterm = None

    def spawn(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        """Start `target(worker, *args)` in a new process (target must be importable)."""
        if name in self.procs:
            raise ValueError(f"a child named {name!r} already exists")
        proc = self.ctx.Process(
            target=_child_main, name=f"rlbench-{name}", daemon=True,
            args=(name, target, args, self._queue, self._stop, os.getpid(), self.torch_threads),
        )
        proc.start()
        self.procs[name] = proc

    @property
    def all_started(self) -> bool:
        """Every child has unpickled its arguments (attached to shared memory)."""
        return self.started == set(self.procs)

    @property
    def all_ready(self) -> bool:
        """Every child has sent "ready" (its target's set-up is done: it runs its loop)."""
        return self.ready == set(self.procs)

    @property
    def running(self) -> list[str]:
        """Children that have not reported a result yet."""
        return [n for n in self.procs if n not in self.results]

    def poll(self, timeout: float = 0.05) -> list[tuple[str, str, Any]]:
        """Messages from children (waiting up to `timeout` for the first).

        Raises `ChildProcessFailed` if a child reported an error or exited without a result.
        "done" messages are stored in `results`, "started" ones in `started` and "ready" ones
        in `ready`, not returned.
        """
        out = self._handle(self._receive(timeout))
        for name in self.running:
            code = self.procs[name].exitcode
            if code is not None:
                # Its last message may still be on its way through the pipe.
                out += self._handle(self._receive(1.0))
                if name not in self.results:
                    how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                    raise ChildProcessFailed(
                        name, f"exited ({how}) without reporting a result; if it died while "
                        "starting, its traceback is on stderr (spawn re-imports the main "
                        "module: guard scripts with `if __name__ == '__main__':`)")
        return out

    def _receive(self, timeout: float) -> list[tuple[str, str, Any]]:
        messages = []
        try:
            messages.append(self._queue.get(timeout=timeout))
            while True:
                messages.append(self._queue.get_nowait())
        except (queue.Empty, OSError, ValueError):
            pass
        return messages

    def _handle(self, messages: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
        out = []
        for name, kind, payload in messages:
            if kind == "error":
                raise ChildProcessFailed(name, payload["error"], payload["traceback"])
            if kind == "done":
                self.results[name] = payload
            elif kind == "started":
                self.started.add(name)
            elif kind == "ready":
                self.ready.add(name)
            else:
                out.append((name, kind, payload))
        return out

    def stop(self) -> None:
        """Ask every child to stop; terminate, then kill, whoever does not within the timeout."""
        self._stop.set()
        deadline = time.monotonic() + self.stop_timeout_s
        for proc in self.procs.values():
            while proc.is_alive() and time.monotonic() < deadline:
                self._receive(0.0)  # a child blocked on a full pipe cannot exit
                proc.join(timeout=0.05)
        for proc in self.procs.values():
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=1.0)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=1.0)
        self._receive(0.0)

