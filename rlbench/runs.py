"""Run records: `metrics.jsonl` (one JSON object per line, flushed as written),
`summary.json` (written atomically at the end), the progress line, and optional tracker
sinks (TensorBoard event files, an offline Weights & Biases run) fed by the same records."""

from __future__ import annotations

import contextlib
import contextvars
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
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from rlbench.types import EvalResult

_VERSIONED = (
    "rlbench", "numpy", "gymnasium", "torch", "jax", "jaxlib", "flax", "optax",
    "dm-control", "mujoco",
)


_UMASK = os.umask(0o022)  # read the process umask (setting it is the only way), then restore
os.umask(_UMASK)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temp file in the same folder + rename: readers never see half a file.
    The file gets the permissions a plain open() would give it (mkstemp's are owner-only,
    which would hide reports and references from a web server or another user)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
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


def plugin_packages() -> list[str]:
    """Distributions that register rlbench trainers (entry-point group ``rlbench.trainers``)
    and the packages they require: a plugin's results depend on its library's version
    (e.g. rlbench-sb3 → stable-baselines3, sbx-rl), so summaries record them too."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    names: list[str] = []
    for ep in metadata.entry_points(group="rlbench.trainers"):
        if ep.dist is None:
            continue
        names.append(canonicalize_name(ep.dist.name))
        for line in ep.dist.requires or ():
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            # Extras' requirements count (an installed sbx-rl matters; absent ones are
            # skipped by the caller), requirements for another platform or Python do not.
            marker = req.marker
            if marker is not None and "extra" not in str(marker) and not marker.evaluate():
                continue
            names.append(canonicalize_name(req.name))
    return list(dict.fromkeys(names))


def package_versions() -> dict[str, str]:
    """Python, platform and the installed versions of rlbench's stack and its plugins'."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in dict.fromkeys([*_VERSIONED, *plugin_packages()]):
        try:
            out.setdefault(name, metadata.version(name))
        except metadata.PackageNotFoundError:  # optional extras (jax, a plugin's sbx) absent
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


# -- trackers --------------------------------------------------------------------------------
TRACKERS = ("tensorboard", "wandb")
"""Tracker sinks `RunRecorder` can feed besides metrics.jsonl (`rlbench train --track`)."""

# openrlbenchmark / CleanRL tag names: the dashboards and the openrlbenchmark plotting tools
# key on them (charts/episodic_return, charts/SPS, losses/<name>, ...).
_CHART_TAGS = {"sps": "SPS", "epsilon": "epsilon", "lr": "learning_rate",
               "learning_rate": "learning_rate", "updates": "updates", "episodes": "episodes",
               "episode_return": "mean_episodic_return"}


def tracker_scalars(kind: str | None, metrics: Mapping[str, Any]) -> dict[str, float]:
    """One `RunRecorder.log` record as openrlbenchmark-style scalar tags.

    episode → ``charts/episodic_return``, ``charts/episodic_length``; eval →
    ``eval/return`` (mean over the eval episodes, raw env reward), ``eval/return_std``,
    ``eval/length``; train → ``charts/SPS``, ``charts/epsilon``, ``charts/learning_rate``
    ..., every other number under ``losses/`` (losses, Q-values, alpha, entropy), as
    CleanRL names them. Non-numbers (nested buffer stats) are left out.
    """
    if kind == "episode":
        return {"charts/episodic_return": float(metrics["ret"]),
                "charts/episodic_length": float(metrics["length"])}
    if kind == "eval":
        lengths = metrics.get("lengths") or []
        out = {"eval/return": float(metrics["return_mean"]),
               "eval/return_std": float(metrics["return_std"])}
        if lengths:
            out["eval/length"] = float(np.mean(lengths))
        return out
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            continue
        if key == "eval_return":  # the latest eval, already logged under eval/return
            continue
        tag = f"charts/{_CHART_TAGS[key]}" if key in _CHART_TAGS else f"losses/{key}"
        out[tag] = float(value)
    return out


class Tracker(Protocol):
    """A sink for a run's scalars (TensorBoard, W&B ...)."""

    def log(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def close(self) -> None: ...


class TensorBoardTracker:
    """TensorBoard event files in ``<run folder>/tensorboard`` (tensorboardX's SummaryWriter,
    or torch.utils.tensorboard's when only that is installed: same files)."""

    def __init__(self, logdir: Path, run_name: str, config: Mapping[str, Any]) -> None:
        self.logdir = logdir
        self.writer = _summary_writer()(str(logdir))
        # What CleanRL records too: the hyperparameters as a markdown table.
        rows = "\n".join(f"|{k}|{v}|" for k, v in config.items())
        self.writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{rows}", 0)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


def _summary_writer() -> Any:
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ValueError("--track tensorboard needs tensorboardX (or torch with tensorboard): "
                             "pip install 'rlbench[track]' -c constraints.txt") from None
    return SummaryWriter


class WandbTracker:
    """An offline Weights & Biases run in ``<run folder>/wandb`` (`wandb sync` uploads it);
    the env step is the x axis (``global_step``, as CleanRL logs it)."""

    def __init__(self, logdir: Path, run_name: str, config: Mapping[str, Any]) -> None:
        wandb = _wandb()
        logdir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project="rlbench", name=run_name, dir=str(logdir), mode="offline",
                              config=dict(config))
        self.run.define_metric("global_step")
        self.run.define_metric("*", step_metric="global_step")

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        self.run.log({**scalars, "global_step": step})

    def close(self) -> None:
        self.run.finish()


def _wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise ValueError("--track wandb needs wandb, which rlbench does not install: "
                         "pip install wandb") from None
    return wandb


_TRACKER_CLASSES = {"tensorboard": TensorBoardTracker, "wandb": WandbTracker}
_active_tracking: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "rlbench_tracking", default=())


def check_trackers(kinds: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Validate tracker names and that their packages import; the names as a tuple."""
    unknown = sorted(set(kinds) - set(TRACKERS))
    if unknown:
        raise ValueError(f"unknown tracker(s) {', '.join(unknown)}; known: {', '.join(TRACKERS)}")
    if "tensorboard" in kinds:
        _summary_writer()
    if "wandb" in kinds:
        _wandb()
    return tuple(dict.fromkeys(kinds))


@contextlib.contextmanager
def tracking(*kinds: str) -> Iterator[None]:
    """Every `RunRecorder` created inside (in this thread/context) also feeds these trackers.

    How `rlbench train --track` reaches the recorder a trainer builds deep inside its own
    run function without a new argument on every trainer (built-in or plugin) and without
    an environment variable that child processes would inherit.
    """
    token = _active_tracking.set(check_trackers(kinds))
    try:
        yield
    finally:
        _active_tracking.reset(token)


class RunRecorder:
    """Collects one run's metrics and evaluations; `finish` writes `summary.json`.

    `track` names tracker sinks (`TRACKERS`) that receive every record as openrlbenchmark
    style scalars (`tracker_scalars`); None → the ones of the enclosing `tracking()`.
    """

    def __init__(self, out_dir: str | Path | None, algo: str, backend: str, config: Any,
                 track: tuple[str, ...] | list[str] | None = None):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.algo, self.backend, self.config = algo, backend, config
        self.eval_history: list[dict[str, Any]] = []
        self.start = time.perf_counter()
        self._metrics = None
        self.trackers: list[Tracker] = []
        kinds = check_trackers(track) if track is not None else _active_tracking.get()
        if kinds and self.out_dir is None:
            raise ValueError(f"tracking ({', '.join(kinds)}) needs a run folder (out_dir)")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "summary.json").unlink(missing_ok=True)  # never a stale verdict
            self._metrics = open(self.out_dir / "metrics.jsonl", "w")
        if kinds:
            config_dict = _config_dict(config)
            name = f"{config_dict.get('env_id')}__{algo}__{config_dict.get('seed')}__{int(time.time())}"
            try:
                for kind in kinds:
                    self.trackers.append(_TRACKER_CLASSES[kind](
                        self.out_dir / kind, name, {"algo": algo, "backend": backend, **config_dict}))
            except BaseException:
                self.close()
                raise

    def log(self, step: int, **metrics: Any) -> None:
        """Append one line to metrics.jsonl (a crash leaves every earlier line intact) and
        hand it to the trackers."""
        if self._metrics is not None:
            line = json.dumps({"step": step, **metrics}, default=_jsonable)
            self._metrics.write(line + "\n")
            self._metrics.flush()
        if self.trackers:
            kind = metrics.get("kind")
            scalars = tracker_scalars(kind, {k: v for k, v in metrics.items() if k != "kind"})
            if kind == "train" and "charts/SPS" not in scalars:
                # CleanRL's SPS: env steps so far over wall seconds so far.
                scalars["charts/SPS"] = step / max(time.perf_counter() - self.start, 1e-9)
            for tracker in self.trackers:
                tracker.log(step, scalars)

    def record_eval(self, step: int, result: EvalResult) -> None:
        entry = {"step": step, **result.to_dict()}
        self.eval_history.append(entry)
        self.log(step, kind="eval", **result.to_dict())

    def finish(self, steps: int, **extra: Any) -> dict[str, Any]:
        wall = time.perf_counter() - self.start
        config = _config_dict(self.config)
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
        trackers, self.trackers = self.trackers, []
        for tracker in trackers:
            tracker.close()


def _config_dict(config: Any) -> dict[str, Any]:
    # TrainConfig has to_dict; a plugin trainer's config is any dataclass.
    return config.to_dict() if hasattr(config, "to_dict") else dataclasses.asdict(config)
