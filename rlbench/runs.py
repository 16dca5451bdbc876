"""Run records: `metrics.jsonl` (one JSON object per line, flushed as written),
`summary.json` (written atomically at the end), and the progress line."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import deque
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from rlbench.types import EvalResult

_VERSIONED = (
    "rlbench", "numpy", "gymnasium", "torch", "jax", "jaxlib", "flax", "optax",
    "dm-control", "mujoco",
)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temp file in the same folder + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(x: Any) -> Any:
    if hasattr(x, "tolist"):  # numpy / jax scalars and arrays
        return x.tolist()
    if isinstance(x, (set, frozenset, tuple)):
        return list(x)
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


@functools.cache
def git_state() -> dict[str, Any]:
    """The commit rlbench runs from and whether its tree has uncommitted changes.

    Recorded in every summary.json and nightly job record, so a result can be traced to the
    code that made it. ``{"commit": None, "dirty": None}`` outside a git checkout (an
    installed wheel). Cached: one process runs one tree.
    """
    here = Path(__file__).resolve().parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=here,
                                 timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


class EpisodeStats:
    """Episode bookkeeping of a training loop: the open episode's return and length, the
    number of finished episodes, and the mean return of the last `window` of them (what the
    progress line and the train metrics show)."""

    def __init__(self, window: int) -> None:
        self.recent: deque[float] = deque(maxlen=window)
        self.episodes = 0
        self.ret, self.length = 0.0, 0

    def step(self, reward: float) -> None:
        """Add one env step's reward to the open episode."""
        self.ret += float(reward)
        self.length += 1

    def end(self) -> tuple[float, int]:
        """Close the open episode (terminated or truncated); its (return, length)."""
        ret, length = self.ret, self.length
        self.finished(ret)
        self.ret, self.length = 0.0, 0
        return ret, length

    def finished(self, ret: float) -> None:
        """Count an episode whose steps were taken elsewhere (an actor process)."""
        self.episodes += 1
        self.recent.append(ret)

    def recent_mean(self) -> float:
        """Mean return of the last `window` finished episodes; NaN before the first."""
        return float(np.mean(self.recent)) if self.recent else math.nan


class Progress:
    """One status line (steps, SPS, last eval/episode return, ETA) at most every
    `interval_s` seconds, to stderr so stdout stays machine-readable."""

    def __init__(self, total: int, label: str, enabled: bool = True, interval_s: float = 2.0):
        self.total, self.label, self.enabled, self.interval_s = total, label, enabled, interval_s
        self.start = time.perf_counter()
        self._last_print = -math.inf

    def update(self, step: int, force: bool = False, **fields: Any) -> None:
        now = time.perf_counter()
        if not self.enabled or (not force and now - self._last_print < self.interval_s):
            return
        self._last_print = now
        elapsed = max(now - self.start, 1e-9)
        sps = step / elapsed
        eta = (self.total - step) / sps if sps > 0 else math.inf
        extra = " ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
        )
        print(
            f"[{self.label}] {step:>8d}/{self.total} steps  {sps:8.0f} sps  "
            f"eta {eta:6.0f}s  {extra}",
            file=sys.stderr,
            flush=True,
        )


class RunRecorder:
    """Collects one run's metrics and evaluations; `finish` writes `summary.json`."""

    def __init__(self, out_dir: str | Path | None, algo: str, backend: str, config: Any):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.algo, self.backend, self.config = algo, backend, config
        self.eval_history: list[dict[str, Any]] = []
        self.start = time.perf_counter()
        self._metrics = None
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "summary.json").unlink(missing_ok=True)  # never a stale verdict
            self._metrics = open(self.out_dir / "metrics.jsonl", "w")

    def log(self, step: int, **metrics: Any) -> None:
        """Append one line to metrics.jsonl (a crash leaves every earlier line intact)."""
        if self._metrics is not None:
            line = json.dumps({"step": step, **metrics}, default=_jsonable)
            self._metrics.write(line + "\n")
            self._metrics.flush()

    def record_eval(self, step: int, result: EvalResult) -> None:
        entry = {"step": step, **result.to_dict()}
        self.eval_history.append(entry)
        self.log(step, kind="eval", **result.to_dict())

    def finish(self, steps: int, **extra: Any) -> dict[str, Any]:
        wall = time.perf_counter() - self.start
        # TrainConfig has to_dict; a plugin trainer's config is any dataclass.
        config = (self.config.to_dict() if hasattr(self.config, "to_dict")
                  else dataclasses.asdict(self.config))
        summary = {
            "algo": self.algo,
            "backend": self.backend,
            "env": config.get("env_id"),
            "seed": config.get("seed"),
            "steps": steps,
            "config": config,
            "final_eval_return": self.eval_history[-1]["return_mean"] if self.eval_history else None,
            "eval_history": self.eval_history,
            "sps": steps / wall if wall > 0 else None,
            "wall_seconds": wall,
            "versions": package_versions(),
            "git": git_state(),
            **extra,
        }
        self.close()
        if self.out_dir is not None:
            atomic_write_json(self.out_dir / "summary.json", summary)
        return summary

    def close(self) -> None:
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
