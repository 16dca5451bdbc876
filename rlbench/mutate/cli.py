"""`rlbench mutate`: argument parsing and output, on top of `rlbench.mutate.engine`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rlbench.mutate.config import (
    ALLOW_LIST,
    DEFAULT_IGNORE,
    DEFAULT_MIN_SCORE,
    DEFAULT_PATHS,
    DEFAULT_TEST_BUDGET,
    DEFAULT_TESTS,
    project_config,
)
from rlbench.processes import sigterm_as_interrupt


def _budget(seconds: float) -> float | None:
    return None if seconds <= 0 else seconds


def _csv(text: str) -> list[str]:
    return [x for x in text.split(",") if x]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `rlbench mutate` on the main CLI."""
    p = sub.add_parser(
        "mutate", help="RL-aware mutation testing: does the fast suite catch the next bug?",
        description="Generates single-site mutants of the RL code with operators aimed at "
        "RL bug classes (see --list-operators), runs each one in an isolated copy against "
        "only the tests that execute its line, and prints the kill matrix per operator and "
        "module. Exit 0 at or above --min-score, 1 below it, 2 on bad input.")
    p.add_argument("--paths", nargs="+", metavar="PATH",
                   help=f"files or folders to mutate (default: {' '.join(DEFAULT_PATHS)})")
    p.add_argument("--tests", nargs="+", metavar="PATH",
                   help=f"test files or folders (default: {' '.join(DEFAULT_TESTS)})")
    p.add_argument("--ignore", nargs="*", metavar="PATH",
                   help=f"test paths left out (default: {' '.join(DEFAULT_IGNORE)}: goldens "
                   "fail on any change)")
    p.add_argument("--operators", type=_csv, metavar="NAME,...",
                   help="only these operators (default: all)")
    p.add_argument("--list-operators", action="store_true", help="list the operators and exit")
    p.add_argument("--changed-since", metavar="REF",
                   help="mutate only lines changed since this git ref (working tree included)")
    p.add_argument("--keys", type=_csv, metavar="KEY,...",
                   help="only the mutants with these keys (as a report lists them: re-run "
                   "a previous run's survivors or timeouts)")
    p.add_argument("--max-mutants", type=int, metavar="N", help="run a random sample of N")
    p.add_argument("--sample", type=float, metavar="FRACTION", help="run this fraction (0-1)")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample/--max-mutants")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="parallel workers, each with its own copy (default: CPU count)")
    p.add_argument("--no-fork", action="store_true",
                   help="a fresh python per mutant instead of the pre-warmed fork server")
    p.add_argument("--timeout-factor", type=float, default=3.0,
                   help="per-mutant timeout = factor x the selected tests' baseline time "
                   "+ --timeout-slack; each test alone is also limited to factor x its own "
                   "baseline + 10 s, with pytest-timeout (default 3)")
    p.add_argument("--timeout-slack", type=float, default=30.0, help="seconds (default 30)")
    p.add_argument("--test-budget", type=float, metavar="SECONDS",
                   help="run at most this many baseline seconds of each mutant's covering "
                   "tests, best killers and fastest first (at least one test); a survivor "
                   "that ran only part of them is marked partial in the report; 0: all "
                   f"(default: [tool.rlbench.mutate] test_budget, else {DEFAULT_TEST_BUDGET:g})")
    p.add_argument("--min-score", type=float,
                   help="exit 1 below this score (default: [tool.rlbench.mutate] min_score "
                   f"in pyproject.toml, else {DEFAULT_MIN_SCORE})")
    p.add_argument("--allow-list", type=Path,
                   help=f"reviewed equivalent mutants (default: ./{ALLOW_LIST})")
    p.add_argument("--test-map", type=Path, metavar="PATH",
                   help="reuse the per-test coverage map at PATH, or save it there")
    p.add_argument("--json", type=Path, metavar="PATH", help="write every mutant's result")
    p.add_argument("--markdown", type=Path, metavar="PATH",
                   help="write the kill matrix and survivor diffs as markdown")
    p.add_argument("--print-allow-entries", action="store_true",
                   help="print allow-list entries (to review) for every survivor")
    p.set_defaults(func=cmd_mutate)


def cmd_mutate(args: argparse.Namespace) -> int:
    try:  # the engine needs the `mutate` extra; the parser above does not
        from rlbench.mutate import allowlist
        from rlbench.mutate.engine import Settings, run
        from rlbench.mutate.operators import OPERATORS
        from rlbench.mutate.report import write_atomic, write_json
    except ImportError as exc:
        raise ValueError(f"rlbench mutate needs the mutate extra ({exc.name} is missing): "
                         "pip install 'rlbench[mutate]'") from None
    if args.list_operators:
        for name, op in OPERATORS.items():
            print(f"{name:<24} {op.doc}")
        return 0
    root = Path.cwd()
    config = project_config(root)
    if args.workers < 1:
        raise ValueError("--workers must be >= 1")
    if args.sample is not None and not 0 < args.sample <= 1:
        raise ValueError("--sample must be in (0, 1]")
    settings = Settings(
        root=root,
        paths=args.paths or config.get("paths", DEFAULT_PATHS),
        tests=args.tests or config.get("tests", DEFAULT_TESTS),
        ignore=args.ignore if args.ignore is not None else config.get("ignore", DEFAULT_IGNORE),
        operators=args.operators or list(OPERATORS),
        changed_since=args.changed_since, keys=args.keys, max_mutants=args.max_mutants,
        sample=args.sample,
        seed=args.seed, workers=args.workers, fork=not args.no_fork,
        timeout_factor=args.timeout_factor, timeout_slack=args.timeout_slack,
        test_budget=_budget(args.test_budget if args.test_budget is not None else float(
            config.get("test_budget", DEFAULT_TEST_BUDGET))),
        min_score=args.min_score if args.min_score is not None else float(
            config.get("min_score", DEFAULT_MIN_SCORE)),
        allow_list=args.allow_list or root / ALLOW_LIST,
        test_map=args.test_map,
    )

    def write(report) -> None:
        if args.json:
            write_json(args.json, report)
        if args.markdown:
            write_atomic(args.markdown, report.markdown())

    with sigterm_as_interrupt():  # same clean-up as Ctrl-C: workers, copies, partial report
        report = run(settings, on_partial=write)
    write(report)
    print(report.text())
    if args.print_allow_entries:
        for r in report.results:
            if r.status == "survived":
                print(allowlist.entry_for(r.mutant))
    return 0 if report.passed else 1


def main(argv: list[str] | None = None) -> int:
    """`python -m rlbench.mutate.cli` without the rest of the rlbench CLI."""
    parser = argparse.ArgumentParser(prog="rlbench")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["mutate", *(sys.argv[1:] if argv is None else argv)])
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"rlbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
