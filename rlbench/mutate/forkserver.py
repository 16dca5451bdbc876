"""A pre-warmed pytest launcher: ``python path/to/forkserver.py MOD...``.

Run as a script, not with ``-m``: importing it as ``rlbench.mutate.forkserver`` would
import the (unmutated) ``rlbench`` package into every forked child.

Importing torch, jax and flax costs a few seconds per process, which would be most of a
killed mutant's run. This server imports the heavy third-party modules once (never
rlbench itself: the mutant must be imported fresh), then forks one child per request; the
child runs ``pytest.main(args)`` in its own session and exits with pytest's code.

Protocol: one JSON object per line on stdin ``{"args": [...], "timeout": s, "log": path}``,
one per line on the original stdout ``{"rc": int | null, "timeout": bool, "seconds": s}``.
A child's whole process group is killed when it ends, on timeout or not: a test (or a
mutant that breaks a trainer's shutdown) may leave spawned processes behind, and they must
not outlive the run that made them.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import time

_child = 0


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_child(*_: object) -> None:
    if _child:
        _kill_group(_child)
    os._exit(1)


def _run_child(args: list[str], log: str) -> None:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    rc = 3
    try:
        import pytest

        rc = int(pytest.main(args))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def serve(preload: list[str]) -> None:
    global _child
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything a preloaded module prints goes to stderr, not the protocol
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception:  # an optional backend that is not installed: just not preloaded
            pass
    if any(m == "rlbench" or m.startswith("rlbench.") for m in sys.modules):
        raise SystemExit("a preloaded module imported rlbench: mutants would not be seen")
    # pytest runs gc.collect() at exit; over torch's and jax's objects that costs ~0.7 s and
    # copies every page the child shares with us. Frozen objects are never collected.
    gc.collect()
    gc.freeze()
    signal.signal(signal.SIGTERM, _kill_child)
    proto.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            _run_child(req["args"], req["log"])
        _child = pid
        deadline = start + float(req["timeout"])
        rc, timed_out = None, False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.perf_counter() > deadline:
                timed_out = True
                _kill_group(pid)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        _kill_group(pid)  # whatever the run left behind in its session (orphans keep the pgid)
        _child = 0
        proto.write(json.dumps({"rc": rc, "timeout": timed_out,
                                "seconds": time.perf_counter() - start}) + "\n")


if __name__ == "__main__":
    del sys.path[0]  # this file's folder: its siblings must not shadow anything
    serve(sys.argv[1:])
