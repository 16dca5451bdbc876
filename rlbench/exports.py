"""`rlbench export RUN_DIR... --csv OUT.csv`: learning curves as one tidy CSV.

One row per (run, eval point) with the columns ``algo, env, variant, seed, step, return,
run`` — what pandas, seaborn and rliable take as they are::

    df = pandas.read_csv("curves.csv")
    final = df[df.step == df.step.max()]           # rliable: {algo: [runs x tasks]}
    scores = {algo: g.pivot(index="seed", columns="env", values="return").to_numpy()
              for algo, g in final.groupby("algo")}

``return`` is the mean evaluation return (raw env reward) at ``step``; with
``--returns episode`` it is each training episode's return instead (``metrics.jsonl``).
``variant`` tells configurations of one algo/env apart: a nightly entry's variant (e.g.
``actors=2``), or, for plain run folders, the config fields in which the runs of one
algo/env differ (e.g. ``learning_rate=0.001``). ``run`` is the run folder.

Sources: nightly result folders (``jobs/*.json``; unfinished jobs are left out and
counted on stderr) and run folders (``summary.json``), the latter found at any depth.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

COLUMNS = ("algo", "env", "variant", "seed", "step", "return", "run")
RETURNS = ("eval", "episode")
_PER_RUN_FIELDS = ("seed",)  # config fields that differ between seeds of one configuration


@dataclass(frozen=True)
class Curve:
    """One run's returns over env steps."""

    algo: str
    env: str
    seed: int
    run: str
    steps: tuple[int, ...]
    returns: tuple[float, ...]
    variant: str = ""
    config: dict[str, Any] = field(default_factory=dict, compare=False)


def _episodes(metrics: Path) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Training-episode (step, return) pairs from a metrics.jsonl (a torn last line of a
    crashed run is skipped)."""
    steps, returns = [], []
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("kind") == "episode":
                steps.append(int(rec["step"]))
                returns.append(float(rec["ret"]))
    return tuple(steps), tuple(returns)


def _from_nightly(path: Path, returns: str, skipped: list[str]) -> list[Curve]:
    curves = []
    for file in sorted((path / "jobs").glob("*.json")):
        try:
            rec = json.loads(file.read_text())
            job, status = rec["job"], rec["status"]
            algo, entry, seed = str(job["algo"]), str(job["entry"]), int(job["seed"])
            env = str(job["changes"]["env_id"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{file}: not a nightly job record ({exc})") from None
        if status != "ok":
            skipped.append(f"{file}: job {status}")
            continue
        prefix = f"{algo}["
        variant = entry[len(prefix):entry.rindex("]/")] if entry.startswith(prefix) else ""
        run_dir = path / "runs" / file.stem
        if returns == "eval":
            steps, values = tuple(rec["steps"]), tuple(rec["returns"])
        else:
            steps, values = _episodes(run_dir / "metrics.jsonl")
        curves.append(Curve(algo, env, seed, str(run_dir), steps, values, variant))
    return curves


def _from_runs(path: Path, returns: str, skipped: list[str]) -> list[Curve]:
    curves = []
    summaries = sorted(path.rglob("summary.json"))
    for file in summaries:
        try:
            summary = json.loads(file.read_text())
            algo, env, seed = str(summary["algo"]), str(summary["env"]), int(summary["seed"])
            config = dict(summary.get("config") or {})
            history = summary.get("eval_history") or []
            steps = tuple(int(h["step"]) for h in history)
            values = tuple(float(h["return_mean"]) for h in history)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{file}: not an rlbench summary.json ({exc})") from None
        if returns == "episode":
            steps, values = _episodes(file.parent / "metrics.jsonl")
        curves.append(Curve(algo, env, seed, str(file.parent), steps, values, config=config))
    finished = {s.parent for s in summaries}
    skipped += [f"{m.parent}: no summary.json (crashed or unfinished run)"
                for m in sorted(path.rglob("metrics.jsonl")) if m.parent not in finished]
    return curves


def _name_variants(curves: list[Curve]) -> list[Curve]:
    """Plain runs of one algo/env with different configs get the differing fields as their
    variant, so that one CSV can hold an A/B comparison."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, c in enumerate(curves):
        if c.config:
            groups[c.algo, c.env].append(i)
    out = list(curves)
    for members in groups.values():
        shared = [{k: v for k, v in curves[i].config.items() if k not in _PER_RUN_FIELDS}
                  for i in members]
        keys = sorted({k for cfg in shared for k in cfg
                       if any(other.get(k) != cfg.get(k) for other in shared)})
        for i, cfg in zip(members, shared):
            variant = " ".join(f"{k}={_fmt(cfg.get(k))}" for k in keys)
            out[i] = replace(curves[i], variant=variant)
    return out


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value)) or "()"
    return str(value)


def collect(paths: Iterable[str | Path], returns: str = "eval") -> tuple[list[Curve], list[str]]:
    """Every finished run under `paths`; (curves, what was skipped and why)."""
    if returns not in RETURNS:
        raise ValueError(f"returns must be one of {', '.join(RETURNS)}, got {returns!r}")
    curves: list[Curve] = []
    skipped: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            raise ValueError(f"{path}: no such folder" if not path.exists() else
                             f"{path}: not a folder (give nightly --out folders or run folders)")
        if (path / "jobs").is_dir() and any((path / "jobs").glob("*.json")):
            found = _from_nightly(path, returns, skipped)
        else:
            found = _from_runs(path, returns, skipped)
            if not found and not skipped:
                raise ValueError(f"{path}: not a nightly result folder (no jobs/*.json) and no "
                                 "run folder (summary.json) under it")
        curves += found
    seen: set[str] = set()
    unique = []
    for c in curves:  # one folder given twice, or inside another given folder
        if c.run not in seen:
            seen.add(c.run)
            unique.append(c)
    return _name_variants(unique), skipped


def to_csv(curves: Sequence[Curve]) -> str:
    """The tidy CSV text (header `COLUMNS`, one row per point)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in sorted(curves, key=lambda c: (c.algo, c.env, c.variant, c.seed, c.run)):
        for step, value in zip(c.steps, c.returns):
            writer.writerow((c.algo, c.env, c.variant, c.seed, step, repr(float(value)), c.run))
    return buf.getvalue()


def cmd_export(args: argparse.Namespace) -> int:
    from rlbench.runs import atomic_write_text

    curves, skipped = collect(args.run_dirs, args.returns)
    if not curves:
        raise ValueError("no finished run to export (" + "; ".join(skipped[:3]) + ")")
    text = to_csv(curves)
    if args.csv == "-":
        sys.stdout.write(text)
    else:
        try:
            atomic_write_text(args.csv, text)
        except OSError as exc:
            raise ValueError(f"--csv {args.csv}: cannot write ({exc.strerror or exc})") from None
    points = text.count("\n") - 1
    entries = sorted({f"{c.algo}{f'[{c.variant}]' if c.variant else ''}/{c.env}" for c in curves})
    print(f"rlbench export: {points} rows from {len(curves)} runs ({', '.join(entries)})"
          + ("" if args.csv == "-" else f" -> {args.csv}"), file=sys.stderr)
    for line in skipped:
        print(f"rlbench export: skipped {line}", file=sys.stderr)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `rlbench export` on the top-level subcommand parser."""
    p = sub.add_parser(
        "export",
        help="learning curves of run or nightly folders as one tidy CSV (pandas, rliable)",
        description="Write one row per (run, eval point) with the columns "
                    f"{', '.join(COLUMNS)}: loadable as it is by pandas, seaborn and rliable. "
                    "RUN_DIR: a nightly result folder (rlbench nightly --out) or a folder "
                    "with run folders (rlbench train --out) at any depth. Unfinished runs "
                    "are left out and listed on stderr.",
    )
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--csv", required=True, metavar="OUT.csv", help="output file ('-': stdout)")
    p.add_argument("--returns", choices=RETURNS, default="eval",
                   help="eval: mean evaluation return at each eval step (default); episode: "
                        "every training episode's return")
    p.set_defaults(func=cmd_export)
