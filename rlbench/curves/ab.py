"""`rlbench compare A B`: the nightly rule (`rlbench.curves.compare`) applied to two sets of
finished runs, A as the reference and B as the candidate.

A and B are each

* a nightly result folder (``rlbench nightly --out DIR``: ``jobs/*.json`` records, entries
  named as in the profile, e.g. ``dqn[actors=2]/CartPole-v1``), or
* a run folder (``summary.json``) or a folder holding run folders at any depth, e.g. the
  ``rlbench train ... --seed S --out runs/ab-lr/s{S}`` runs of one configuration: runs are
  grouped into entries ``algo/env`` by their summaries, one seed per run.

Entries are matched by name; entries found on one side only are listed and not judged.
As in the nightly job, an entry with a crashed or unfinished run is reported as "error",
never as a pass or a regression (half a seed set proves nothing).

Exit status: 0 every judged entry passed (or improved), 1 anything regressed, 3 an entry
could not be judged (a run crashed, too few seeds, different budgets), 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_REGRESSED, EXIT_BAD_INPUT, EXIT_UNJUDGED = 0, 1, 2, 3
ERROR = "error"
# The run folder's config fields that may differ between the seeds of one entry.
_PER_RUN_FIELDS = ("seed",)


@dataclass
class Side:
    """One side of the comparison: the job records of each entry, read from `path`."""

    path: Path
    kind: str  # "nightly" or "runs"
    records: dict[str, list[Any]]  # entry name -> JobRecords (ok or not)
    problems: list[str] = field(default_factory=list)  # unfinished runs found under `path`


def load_side(path: str | Path) -> Side:
    """The runs under `path` (see the module docstring); ValueError when there are none."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"{path}: no such folder" if not path.exists()
                         else f"{path}: not a folder (give a nightly --out folder or run folders)")
    if (path / "jobs").is_dir() and any((path / "jobs").glob("*.json")):
        return _load_nightly(path)
    summaries = sorted(path.rglob("summary.json"))
    if not summaries:
        raise ValueError(f"{path}: not a nightly result folder (no jobs/*.json) and no run "
                         "folder (summary.json) under it")
    return _load_runs(path, summaries)


def _load_nightly(path: Path) -> Side:
    from rlbench.curves.records import INCOMPLETE, Job, JobRecord

    records: dict[str, list[JobRecord]] = defaultdict(list)
    seen = set()
    for file in sorted((path / "jobs").glob("*.json")):
        try:
            record = JobRecord.from_dict(json.loads(file.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{file}: not a nightly job record ({exc})") from None
        records[record.job.entry].append(record)
        seen.add(record.job.id)
    # Jobs of the run that never wrote a record (interrupted) count as incomplete.
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        planned = [Job(j["entry"], j["algo"], int(j["seed"]), tuple(j["changes"].items()))
                   for j in manifest.get("jobs", [])]
    except (OSError, ValueError, KeyError, TypeError):
        planned = []
    for job in planned:
        if job.id not in seen:
            records[job.entry].append(JobRecord(job, INCOMPLETE, error="no record: the run "
                                                "stopped before this job finished"))
    return Side(path, "nightly", dict(records))


def _load_runs(path: Path, summaries: list[Path]) -> Side:
    from rlbench.curves.records import Job, JobRecord

    records: dict[str, list[JobRecord]] = defaultdict(list)
    configs: dict[str, tuple[dict[str, Any], Path]] = {}
    where: dict[tuple[str, int], Path] = {}
    for file in summaries:
        try:
            summary = json.loads(file.read_text())
            algo, env, seed = str(summary["algo"]), str(summary["env"]), int(summary["seed"])
            config = dict(summary.get("config") or {})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{file}: not an rlbench summary.json ({exc})") from None
        name = f"{algo}/{env}"
        if (name, seed) in where:
            raise ValueError(f"{path}: two runs of {name} with seed {seed}: "
                             f"{where[name, seed].parent} and {file.parent}")
        where[name, seed] = file
        shared = {k: v for k, v in config.items() if k not in _PER_RUN_FIELDS}
        if name in configs and configs[name][0] != shared:
            first, other = configs[name]
            diff = sorted(k for k in first.keys() | shared.keys() if first.get(k) != shared.get(k))
            raise ValueError(f"{path}: the runs of {name} differ in config {', '.join(diff)} "
                             f"({other.parent} vs {file.parent}); put each configuration in "
                             "its own folder")
        configs.setdefault(name, (shared, file))
        job = Job(name, algo, seed, (("env_id", env),))
        records[name].append(JobRecord.from_summary(job, summary))
    # A run folder without summary.json crashed or is still running: the side is incomplete.
    finished = {s.parent for s in summaries}
    problems = [f"{m.parent}: no summary.json (the run crashed or has not finished)"
                for m in sorted(path.rglob("metrics.jsonl")) if m.parent not in finished]
    return Side(path, "runs", dict(records), problems)


@dataclass
class EntryVerdict:
    """One matched entry: the rule's comparison, or why there is none."""

    name: str
    verdict: str
    comparison: Any = None  # rlbench.curves.compare.Comparison
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "error": self.error,
                "comparison": self.comparison.to_dict() if self.comparison else None}


def _range(env: str, overrides: dict[str, tuple[float, float]]) -> tuple[float, float]:
    from rlbench.curves.profiles import SCORE_RANGES, score_range

    try:
        return score_range(env, {**SCORE_RANGES, **overrides})
    except ValueError:
        raise ValueError(f"no score range known for env {env!r}: pass --score-range "
                         f"{env}=WORST,BEST") from None


def judge(name: str, reference: list[Any], candidate: list[Any], rule: Any,
          score_range: tuple[float, float], seed: int = 0) -> EntryVerdict:
    """The rule on one entry (candidate B vs reference A), or an "error" saying why not."""
    from rlbench.curves.compare import compare
    from rlbench.curves.records import OK, CurveSet

    bad = [f"{side} seed {r.job.seed} {r.status}" + (f" ({r.error.splitlines()[0][:120]})"
                                                     if r.error else "")
           for side, recs in (("A", reference), ("B", candidate)) for r in recs
           if r.status != OK]
    if bad:
        return EntryVerdict(name, ERROR, error="; ".join(bad))
    ref = CurveSet.from_records(name, reference, score_range)
    cand = CurveSet.from_records(name, candidate, score_range)
    try:
        comparison = compare(cand, ref, rule, seed=seed)
    except ValueError as exc:  # too few seeds, different budgets (BaselineError)
        return EntryVerdict(name, ERROR, error=str(exc))
    return EntryVerdict(name, comparison.verdict, comparison)


def compare_folders(a: str | Path, b: str | Path, rule: Any = None,
                    score_ranges: dict[str, tuple[float, float]] | None = None,
                    seed: int = 0) -> dict[str, Any]:
    """Judge B against A; the result as a JSON-ready dict (``verdict``, ``exit_status``,
    ``entries`` by name, ``only_in_a``/``only_in_b``, ``problems``)."""
    from rlbench.curves.compare import IMPROVED, PASS, REGRESSED, Rule

    rule = rule or Rule()
    side_a, side_b = load_side(a), load_side(b)
    common = sorted(side_a.records.keys() & side_b.records.keys())
    if not common:
        raise ValueError(f"{a} and {b} have no entry in common (A: "
                         f"{', '.join(sorted(side_a.records))}; B: {', '.join(sorted(side_b.records))})")
    entries = {}
    for name in common:
        env = side_a.records[name][0].job.config_changes().get("env_id", name.split("/", 1)[-1])
        entries[name] = judge(name, side_a.records[name], side_b.records[name], rule,
                              _range(str(env), score_ranges or {}), seed)
    problems = [f"A: {p}" for p in side_a.problems] + [f"B: {p}" for p in side_b.problems]
    verdicts = {e.verdict for e in entries.values()}
    if REGRESSED in verdicts:
        verdict, code = REGRESSED, EXIT_REGRESSED
    elif ERROR in verdicts or problems:
        verdict, code = ERROR, EXIT_UNJUDGED
    else:
        verdict, code = (IMPROVED if IMPROVED in verdicts else PASS), EXIT_OK
    return {
        "reference": str(side_a.path), "candidate": str(side_b.path),
        "kinds": {"reference": side_a.kind, "candidate": side_b.kind},
        "verdict": verdict, "exit_status": code, "rule": rule.to_dict(),
        "rule_text": rule.describe(),
        "entries": {n: e.to_dict() for n, e in entries.items()},
        "only_in_a": sorted(side_a.records.keys() - side_b.records.keys()),
        "only_in_b": sorted(side_b.records.keys() - side_a.records.keys()),
        "problems": problems,
    }


def format_table(result: dict[str, Any]) -> str:
    """The per-entry verdict table and the overall verdict, as plain text."""
    from rlbench.tables import text_table

    def cell(c: dict[str, Any] | None, key: str) -> str:
        if c is None:
            return "—"
        iv = c[key]
        return f"{iv['point']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"

    rows = []
    for name, e in result["entries"].items():
        comp = e["comparison"]
        scores = comp["scores"] if comp else {}
        seeds = f"{comp['n_reference']} vs {comp['n_candidate']}" if comp else "—"
        row = [name, e["verdict"].upper() if e["verdict"] == "regressed" else e["verdict"], seeds]
        for score in ("auc", "final"):
            c = scores.get(score)
            row += [f"{c['reference_iqm']['point']:.3f} -> {c['candidate_iqm']['point']:.3f}"
                    if c else "—", cell(c, "iqm_difference"), cell(c, "probability_of_improvement")]
        rows.append(row)
    header = ["entry", "verdict", "seeds A vs B", "AUC IQM A -> B", "AUC B-A [CI]",
              "P(B > A) AUC [CI]", "final IQM A -> B", "final B-A [CI]", "P(B > A) final [CI]"]
    lines = [f"A (reference): {result['reference']}", f"B (candidate): {result['candidate']}",
             "", text_table(rows, header), ""]
    errors = [(n, e["error"]) for n, e in result["entries"].items() if e["error"]]
    lines += [f"not judged: {n}: {msg}" for n, msg in errors]
    lines += [f"problem: {p}" for p in result["problems"]]
    for side in ("a", "b"):
        if result[f"only_in_{side}"]:
            lines.append(f"only in {side.upper()} (not judged): {', '.join(result[f'only_in_{side}'])}")
    lines += [f"Rule: {result['rule_text']}. Scores are normalised to the env's score range.",
              f"Verdict: {result['verdict']} (exit status {result['exit_status']})"]
    return "\n".join(lines)


def _score_range_arg(text: str) -> tuple[str, tuple[float, float]]:
    try:
        env, values = text.rsplit("=", 1)
        lo, hi = (float(x) for x in values.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ENV=WORST,BEST, got {text!r}") from None
    if not hi > lo:
        raise argparse.ArgumentTypeError(f"{text!r}: BEST must be greater than WORST")
    return env, (lo, hi)


def cmd_compare(args: argparse.Namespace) -> int:
    from rlbench.curves.compare import Rule

    kwargs: dict[str, Any] = {"min_effect": args.min_effect, "confidence": args.confidence}
    if args.score:
        kwargs["scores"] = tuple(args.score)
    result = compare_folders(args.a, args.b, Rule(**kwargs), dict(args.score_range), args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_table(result))
    if result["exit_status"] == EXIT_UNJUDGED and not args.json:
        print("rlbench compare: some entries could not be judged (see above)", file=sys.stderr)
    return int(result["exit_status"])


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `rlbench compare` on the top-level subcommand parser."""
    p = sub.add_parser(
        "compare",
        help="A/B: judge finished runs B against runs A with the nightly rule",
        description=(
            "Apply the nightly comparison rule with A as the reference and B as the "
            "candidate, per entry (algo/env[variant]). A and B are nightly result folders "
            "(rlbench nightly --out) or folders of run folders (rlbench train --out), one "
            "seed per run. Exit status: 0 pass/improved, 1 anything regressed, 3 an entry "
            "could not be judged (crashed run, fewer than 2 seeds a side, different "
            "budgets), 2 bad input."
        ),
    )
    p.add_argument("a", metavar="RUN_DIR_A", help="the reference runs")
    p.add_argument("b", metavar="RUN_DIR_B", help="the candidate runs")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--min-effect", type=float, default=0.1,
                   help="smallest IQM change (fraction of the score range) that can be a "
                        "verdict (default 0.1, the nightly rule's)")
    p.add_argument("--confidence", type=float, default=0.95,
                   help="family-wise interval level per entry (default 0.95)")
    p.add_argument("--score", action="append", choices=("auc", "final"),
                   help="deciding score (repeatable; default auc, the nightly rule's)")
    p.add_argument("--score-range", action="append", default=[], type=_score_range_arg,
                   metavar="ENV=WORST,BEST",
                   help="score range of an env the built-in table lacks, e.g. "
                        "Pendulum-v1=-1700,0 (repeatable; 'family:' prefixes allowed)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.set_defaults(func=cmd_compare)
