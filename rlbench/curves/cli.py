"""`rlbench nightly`: argument parsing only; the work is imported when the command runs."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path

# One single-threaded process per job; capped because every job holds a torch/JAX runtime
# (~0.5 GB) in memory.
DEFAULT_JOBS = max(1, min(os.cpu_count() or 1, 8))

# The built-in profiles are TOML files next to rlbench.curves.profiles (their one source of
# truth); only their descriptions are read here, with tomllib, so that `rlbench --help` does
# not import numpy/scipy through the profiles module.
PROFILE_DIR = Path(__file__).with_name("profiles")


def profile_help() -> dict[str, str]:
    """Built-in profile name → description, read from the TOML files."""
    out = {}
    for path in sorted(PROFILE_DIR.glob("*.toml")):
        try:
            out[path.stem] = str(tomllib.loads(path.read_text()).get("description", ""))
        except (OSError, tomllib.TOMLDecodeError):
            out[path.stem] = "(unreadable profile file)"
    return out


def cmd_nightly(args: argparse.Namespace) -> int:
    from rlbench.curves.nightly import nightly, write_reference
    from rlbench.curves.profiles import check_configs, dumps_profile, get_profile

    profile = get_profile(args.profile)
    if args.print_profile:
        print(dumps_profile(profile), end="")
        return 0
    check_configs(profile)  # an unknown config field fails here, not after hours of training
    common = {"executor": args.executor, "jobs": args.jobs, "address": args.address,
              "resume": args.resume, "progress": not args.quiet}
    if args.write_reference:
        try:
            return write_reference(profile, args.write_reference, args.out, **common)
        except RuntimeError as exc:  # reference jobs failed: nothing written
            print(f"rlbench: error: {exc}", file=sys.stderr)
            return 3
    baseline = args.baseline or profile.baseline
    if args.baseline_ref:
        from rlbench.curves.baseline_ref import baseline_from_ref

        if args.baseline:
            raise ValueError("--baseline and --baseline-ref exclude each other")
        try:
            baseline = baseline_from_ref(args.baseline_ref, str(args.profile), Path(args.out),
                                         args.jobs, args.quiet, resume=args.resume)
        except RuntimeError as exc:  # the baseline side failed: no verdict to give
            print(f"rlbench: error: {exc}", file=sys.stderr)
            return 3
    return nightly(profile, args.out, baseline, **common)


def cmd_history(args: argparse.Namespace) -> int:
    from rlbench.curves.history import cmd_history as run

    return run(args.folders, args.page)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `rlbench nightly` on the top-level subcommand parser."""
    p = sub.add_parser(
        "nightly",
        help="learning-curve regression job: run a profile, compare with reference curves",
        description=(
            "Run a profile's suite (algorithm x env x seed), compare the eval-return curves "
            "with the reference curves, and write report.md, report.html, plots/*.png and "
            "verdict.json to --out. Exit status: 0 pass/improved, 1 anything regressed, "
            "3 a job crashed or the run was interrupted (reported as such, never as a "
            "pass or a regression), 2 bad input (e.g. a missing or malformed baseline or "
            "profile)."
        ),
    )
    builtins = profile_help()
    p.add_argument("--profile", default="quick", metavar="NAME|FILE.toml",
                   help="a built-in profile (" + "; ".join(f"{k}: {v}" for k, v in builtins.items())
                        + f") or a TOML profile file naming any registered trainer (copy one "
                          f"of {PROFILE_DIR}/*.toml; --print-profile shows one in full); "
                          "default quick")
    p.add_argument("--print-profile", action="store_true",
                   help="print the profile as TOML (every field spelled out) and exit")
    p.add_argument("--out", default="runs/nightly", help="output folder (default runs/nightly)")
    p.add_argument("--baseline", metavar="PATH",
                   help="reference curves JSON (default: the profile's `baseline`, else the "
                        "committed reference of the profile)")
    p.add_argument("--baseline-ref", metavar="REF",
                   help="A/B in one job: check git REF out in a worktree, run its code on the "
                        "profile's reference seeds here, and compare this checkout's nightly "
                        "seeds against that (no stored reference needed; e.g. origin/main or "
                        "the merge base)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: process pool on this machine (default); ray: one Ray task "
                        "per job (pip install 'rlbench[dist]')")
    p.add_argument("--address", help="Ray cluster address, e.g. auto (default: a private local "
                                     "Ray instance)")
    p.add_argument("--jobs", "-j", type=int, default=DEFAULT_JOBS,
                   help=f"jobs run in parallel, one process (one thread) each (default: CPU "
                        f"count, at most 8: {DEFAULT_JOBS} here)")
    p.add_argument("--resume", action="store_true",
                   help="keep finished jobs already in --out and run only the rest (without "
                        "it, earlier job results in --out are discarded)")
    p.add_argument("--write-reference", metavar="PATH",
                   help="instead of comparing: run the profile's reference seeds and fault "
                        "probes, measure the rule's false-alarm rate and power, write the "
                        "reference file to PATH and a calibration report to --out")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_nightly)
    # `rlbench nightly history DIR...`: an optional sub-command, so `rlbench nightly --profile
    # ...` (no positional) parses exactly as before.
    sub_nightly = p.add_subparsers(dest="nightly_command", metavar="{history}")
    h = sub_nightly.add_parser(
        "history", help="one static HTML page over successive nightly results",
        description=(
            "Build one self-contained HTML page over successive `rlbench nightly --out` "
            "folders: the verdict of every entry per night (ordered by when each verdict was "
            "made) with links to each night's report.html, and per entry its IQM with the 95% "
            "interval band across nights. Folders whose run did not finish are skipped with a "
            "note. Exit status 2: a folder that is not a nightly result, or no finished night."
        ),
    )
    h.add_argument("folders", nargs="+", metavar="DIR", help="nightly output folders")
    # dest `page`, not `out`: the sub-namespace is copied over nightly's, whose --out differs.
    h.add_argument("--out", dest="page", default="history.html", metavar="PAGE.html",
                   help="where to write the page (default history.html); links to the "
                        "reports are relative to it")
    h.set_defaults(func=cmd_history)
