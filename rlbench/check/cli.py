"""`rlbench check ALGO [--json]`: run the check battery on any registered trainer."""

from __future__ import annotations

import argparse
import json
import sys

from rlbench.check.battery import CHECK_NAMES, CheckResult, run_battery
from rlbench.tables import text_table


def _row(c: CheckResult) -> list[str]:
    return [c.name, c.kind, c.verdict.upper() if c.verdict == "fail" else c.verdict,
            f"{c.seconds:.1f}", c.reason]


def cmd_check(args: argparse.Namespace) -> int:
    faults = tuple(f for f in (args.faults or "").split(",") if f)

    def progress(c: CheckResult) -> None:
        if not args.quiet:
            print(f"[check] {args.algo} {c.name} ({c.kind}): {c.verdict} in {c.seconds:.1f} s",
                  file=sys.stderr, flush=True)

    report = run_battery(args.algo, seed=args.seed, faults=faults, only=args.only or None,
                         kinds=[args.kind] if args.kind else None, on_result=progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(text_table([_row(c) for c in report.checks],
                         ["check", "kind", "verdict", "seconds", "reason"]))
        counts = report.counts()
        print(f"\n{report.trainer}: {counts['pass']} pass, {counts['fail']} fail, "
              f"{counts['skip']} skip in {report.seconds:.0f} s (seed {report.seed}"
              + (f", faults {','.join(report.faults)}" if report.faults else "") + ")")
    return 0 if report.ok else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add `rlbench check` to the top-level subcommands."""
    from rlbench.api import trainer_names

    p = sub.add_parser(
        "check", help="run the check battery (probes, time limits, eval protocol, "
                      "determinism, NaN) on a trainer; exit 1 when a check fails",
        description="Short seeded probe runs of a registered trainer, each check ending in "
                    "pass / fail / skip and a reason naming the broken piece. See docs/check.md.")
    p.add_argument("algo", choices=trainer_names(), help="a registered trainer (built-in or plugin)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", action="append", choices=CHECK_NAMES, metavar="CHECK",
                   help=f"run only this check (repeatable): {', '.join(CHECK_NAMES)}")
    p.add_argument("--kind", choices=("discrete", "continuous"),
                   help="only this action kind (default: every kind the trainer supports)")
    p.add_argument("--faults", help="comma-separated fault ids to switch on in every run")
    p.add_argument("--quiet", action="store_true", help="no per-check progress lines")
    p.set_defaults(func=cmd_check)
