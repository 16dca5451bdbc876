"""`rlbench faults {list,verify,impact}`: the catalogue, its kill matrix and its impact."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rlbench.faults.catalogue import BY_ID, CATALOGUE, SOURCE_NAMES, Fault, parse_faults
from rlbench.faults.detectors import with_detectors
from rlbench.faults.impact import format_impact, impact
from rlbench.faults.verify import (
    CLEAN_TIMEOUT_FACTOR,
    DEFAULT_TIMEOUT_S,
    PytestRun,
    format_kill_matrix,
    kill_matrix,
)
from rlbench.processes import sigterm_as_interrupt
from rlbench.tables import text_table


def _short_source(fault: Fault) -> str:
    return f"{SOURCE_NAMES.get(fault.source, fault.source)} {fault.item}"


def cmd_list(args: argparse.Namespace) -> int:
    catalogue = with_detectors(CATALOGUE)  # the rows plus their marked detector tests
    if args.json:
        print(json.dumps([asdict(f) for f in catalogue], indent=2))
    elif args.markdown:  # the README table is generated from the catalogue, never typed
        print("| id | source | the bug | the fix rlbench keeps |\n|---|---|---|---|")
        for f in catalogue:
            print(f"| `{f.id}` | {_short_source(f)} | {f.bug} | {f.fix} |")
    else:
        print(text_table([[f.id, _short_source(f), ",".join(f.algos), len(f.detectors),
                       f.bug if len(f.bug) <= 70 else f.bug[:69] + "…"]
                      for f in catalogue],
                     ["id", "source", "algos", "detectors", "the bug"]))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    faults = [BY_ID[i] for i in parse_faults(args.only)] if args.only else list(CATALOGUE)
    faults.sort(key=CATALOGUE.index)

    def progress(name: str, run: PytestRun) -> None:
        if not args.json:
            state = "timeout" if run.timed_out else f"exit {run.returncode}"
            print(f"[verify] {name}: {state} in {run.seconds:.1f} s", file=sys.stderr, flush=True)

    try:
        with sigterm_as_interrupt():  # so the pytest process groups are killed on CI cancel
            rows, clean = kill_matrix(faults, jobs=args.jobs, timeout=args.timeout,
                                      on_result=progress)
    except ModuleNotFoundError as exc:  # pytest-reportlog missing: say what to install
        print(f"rlbench faults verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=2))
    else:
        print(format_kill_matrix(rows, clean))
    return 0 if rows and all(r.ok for r in rows) else 1


def cmd_impact(args: argparse.Namespace) -> int:
    with sigterm_as_interrupt():  # so the training process groups are killed on CI cancel
        result = impact(args.algo, args.seeds, args.steps, args.faults, args.out, args.jobs,
                        args.env, args.set, args.timeout)
    print(format_impact(result["rows"], result["title"]))
    print(f"\nwrote {result['out']}/impact.json and {result['out']}/impact.png")
    # A crashing clean baseline voids its comparisons: that is a failed study.
    return 0 if all(r.status == "ok" for r in result["rows"] if r.baseline is None) else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `rlbench faults {list,verify,impact}` on the main CLI."""
    p = sub.add_parser("faults", help="the documented-fault catalogue, its kill matrix and impact")
    fsub = p.add_subparsers(dest="faults_command", required=True, metavar="ACTION")

    q = fsub.add_parser("list", help="the catalogue: id, source, algorithms, detector count")
    fmt = q.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="every field, machine-readable")
    fmt.add_argument("--markdown", action="store_true", help="the README table")
    q.set_defaults(func=cmd_list)

    q = fsub.add_parser(
        "verify",
        help="kill matrix: each fault's detectors must fail with it on and pass clean",
        description="Runs every fault's detector tests in a fresh pytest process with the "
        "fault on (≥1 must fail in its test body; import/collection errors and timeouts are "
        "not kills) and all detectors once clean (all must pass). Exit 1 if any fault "
        "survives, any clean run fails, or a fault has no detectors.",
    )
    q.add_argument("--json", action="store_true",
                   help='[{"id","killed","detectors","clean_passed","seconds",...}]')
    q.add_argument("--only", metavar="ID,...", help="only these faults")
    q.add_argument("--jobs", type=int, default=2, help="pytest processes at once (default 2)")
    q.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                   help=f"seconds per fault-on pytest process, {CLEAN_TIMEOUT_FACTOR}x for "
                   f"the clean run over all detectors; a timeout is not a kill "
                   f"(default {DEFAULT_TIMEOUT_S:.0f})")
    q.set_defaults(func=cmd_verify)

    q = fsub.add_parser(
        "impact",
        help="final eval return with each applicable fault vs clean, over seeds",
        description="Trains ALGO clean and with each fault whose code path it has, for "
        "seeds 0..SEEDS-1, and reports fault − clean final eval return with a bootstrap 95%% "
        "CI (table, OUT/impact.json, OUT/impact.png). Faults whose catalogue row has a setup "
        "(e.g. actors=2) are compared with a clean baseline run in that same setup. A fault "
        "that kills or hangs training is reported as crashed.",
    )
    q.add_argument("--algo", required=True, help="trainer to measure (see `rlbench train -h`)")
    q.add_argument("--seeds", type=int, default=5, help="seeds per variant (default 5)")
    q.add_argument("--steps", type=int, required=True, help="env steps per run")
    q.add_argument("--faults", metavar="ID,...", help="only these faults (default: all that apply)")
    q.add_argument("--env", help="env id (default: the algorithm's config default)")
    q.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="config override passed to every run (repeatable)")
    q.add_argument("--out", type=Path, help="results folder (default runs/impact-<algo>)")
    q.add_argument("--jobs", type=int, default=1, help="training runs at once (default 1)")
    q.add_argument("--timeout", type=float, default=3600.0,
                   help="seconds per run before it counts as hung (default 3600)")
    q.set_defaults(func=cmd_impact)
