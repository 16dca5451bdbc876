"""Which check of `rlbench check` catches which catalogued fault.

For every trainer (default dqn, iqn, sac) the battery runs once clean, then once per
catalogued fault that lives in that trainer's code (the fault switched on through the
config's ``faults`` field, plus the catalogue row's setup, e.g. ``dropout=0.1``). The table
lists the checks each fault makes fail, next to the check that isolates the piece the fault
breaks (``PRIMARY``), so "caught by the right check" is read off, not asserted.

A setup under which the clean battery cannot even fit probe 1 is reported as not
reachable; checks the clean battery already fails under a setup (determinism with actor
processes, for one) are not counted against the fault.

    python scripts/check_faults.py --markdown            # all three trainers (slow: run it
    python scripts/check_faults.py --trainers dqn --json out.json   # in the background)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from typing import Any

from rlbench.api import get_spec
from rlbench.check import BatteryReport, run_battery
from rlbench.config import with_overrides
from rlbench.faults import CATALOGUE, Fault

PRIMARY: dict[str, str] = {
    "eval-truncation-ignored": "eval-protocol",  # evaluation runs past the time limit
    "target-not-updated": "discount",  # V(0) = gamma · (an untrained target's V(1))
    "reward-scale-mismatch": "probe-1",  # every value 0.1 × the reward
    "buffer-drops-writes": "probe-1",  # the learner sees zero rows only: nothing fits
    "sample-unfilled-slots": "probe-1",  # zero rows from unfilled slots drag values to 0
    "stale-eval-actor": "probe-4",  # the greedy action is the initial actor's
    "batch-not-on-device": "probe-1",  # the update itself breaks (on a GPU)
    "step-counter-missing": "probe-1",  # the learner process dies: no run trains
}
"""The check that isolates the piece each fault breaks. Faults missing here change nothing
a seeded probe run can see through the protocol: exploration (epsilon-not-decayed: the
learner is off-policy, random behaviour still fits the probes), optimisation details that
matter only on long runs (no-grad-clipping, no-lr-schedule, stale-optimizer, whose weight
copy happens in the actor/learner path), warm-up timing (sample-before-warmup), the
actors' copies of weights and epsilon (stale-actor-weights, epsilon-not-published: the
greedy policy is the learner's, and the actors' behaviour only changes what an off-policy
learner explores), and the train/eval mode with dropout 0.1 on probes
(eval-mode-training)."""


BLIND_SPOTS: dict[tuple[str, str], str] = {
    ("batch-not-on-device", "dqn"): "on a CPU-only machine the unconverted batch is already "
    "on the model's device, with dtypes torch accepts",
    ("batch-not-on-device", "iqn"): "on a CPU-only machine the unconverted batch is already "
    "on the model's device, with dtypes torch accepts",
    ("sample-unfilled-slots", "sac"): "the critic fits the all-zero rows as a narrow spike at "
    "exactly a = 0 (Q(0, 0) = 0.50 vs 1.00 around it on probe 1), and values() reads Q only "
    "at the greedy action",
}
"""Measured reasons why a fault's isolating check stays green for one trainer."""


def _spec_with_setup(name: str, setup: tuple[str, ...]):
    """`name`'s spec with the fault row's NAME=VALUE setup added to its check overrides
    (parsed by the config fields' types, like ``rlbench train --set``)."""
    spec = get_spec(name)
    changes = _setup_changes(name, setup)
    if not changes:
        return spec
    return dataclasses.replace(spec, check_overrides={**spec.check_overrides, **changes})


def _setup_changes(name: str, setup: tuple[str, ...]) -> dict[str, Any]:
    """The setup's fields whose values differ from the battery's config for `name` (a setup
    that changes nothing, e.g. lr_schedule=linear where linear is the default, needs no
    second clean battery)."""
    spec = get_spec(name)
    base = spec.default_config(**spec.check_overrides)
    parsed = with_overrides(base, dict(s.split("=", 1) for s in setup))
    return {k: getattr(parsed, k) for k in (s.split("=", 1)[0] for s in setup)
            if getattr(parsed, k) != getattr(base, k)}


def _failing(report: BatteryReport) -> list[str]:
    return sorted({c.name + ("" if c.kind == "discrete" or len({x.kind for x in report.checks}) == 1
                             else f" ({c.kind})") for c in report.failed})


def check_faults(trainers: list[str], seed: int = 0, only_faults: set[str] | None = None,
                 log=print) -> dict[str, Any]:
    """Run the battery clean and per fault; return rows and per-trainer timings."""
    out: dict[str, Any] = {"clean": {}, "rows": []}
    clean_runs: dict[tuple[str, tuple[str, ...]], BatteryReport] = {}

    def clean(name: str, setup: tuple[str, ...]) -> BatteryReport:
        """The battery without faults under `setup` (once per trainer and setup)."""
        setup = tuple(f"{k}={v}" for k, v in _setup_changes(name, setup).items())
        if (name, setup) not in clean_runs:
            report = run_battery(_spec_with_setup(name, setup), seed=seed)
            clean_runs[name, setup] = report
            log(f"[check-faults] {name} clean{' ' + ','.join(setup) if setup else ''}: "
                f"{report.counts()} in {report.seconds:.0f} s")
        return clean_runs[name, setup]

    for name in trainers:
        base = clean(name, ())
        out["clean"][name] = {"seconds": base.seconds, "counts": base.counts(),
                              "checks": [c.to_dict() for c in base.checks]}
        faults: list[Fault] = [f for f in CATALOGUE if name in f.algos
                               and (only_faults is None or f.id in only_faults)]
        for fault in faults:
            row: dict[str, Any] = {"fault": fault.id, "trainer": name, "setup": list(fault.setup),
                                   "primary": PRIMARY.get(fault.id)}
            try:
                setup_clean = clean(name, fault.setup)
            except Exception as exc:  # the setup is not a valid config for this trainer
                row |= {"status": "setup not runnable", "detail": f"{type(exc).__name__}: {exc}"}
                out["rows"].append(row)
                continue
            basic = {c.name for c in setup_clean.failed} & {"probe-1"}
            if basic:  # the setup cannot even fit a constant through the protocol
                row |= {"status": "setup not runnable",
                        "detail": f"clean with {','.join(fault.setup)}: "
                                  f"{setup_clean.failed[0].reason}"}
                out["rows"].append(row)
                log(f"[check-faults] {name} {fault.id}: setup not runnable")
                continue
            # Checks the setup fails without the fault (e.g. determinism with actor
            # processes) say nothing about the fault: only new failures count.
            baseline = _failing(setup_clean)
            spec = _spec_with_setup(name, fault.setup)
            report = run_battery(spec, seed=seed, faults=[fault.id])
            failing = [f for f in _failing(report) if f not in baseline]
            row |= {"status": "caught" if failing else "not seen", "failing": failing,
                    "clean_fails": baseline, "seconds": report.seconds,
                    "reasons": {c.name + f" ({c.kind})": c.reason for c in report.failed}}
            out["rows"].append(row)
            log(f"[check-faults] {name} {fault.id}: {failing or 'nothing new failed'}"
                f"{f' (clean with the setup fails {baseline})' if baseline else ''} "
                f"in {report.seconds:.0f} s")
    return out


def markdown(result: dict[str, Any]) -> str:
    lines = ["| trainer | clean battery | wall time |", "|---|---|---|"]
    for name, clean in result["clean"].items():
        c = clean["counts"]
        lines.append(f"| {name} | {c['pass']} pass, {c['fail']} fail, {c['skip']} skip | "
                     f"{clean['seconds']:.0f} s |")
    lines += ["", "| fault | trainer | failing checks | isolating check | verdict |",
              "|---|---|---|---|---|"]
    for row in result["rows"]:
        primary = row["primary"] or "—"
        if row["status"] == "setup not runnable":
            failing, verdict = "—", f"not reachable: {row['detail'][:90]}"
        else:
            failing = ", ".join(row["failing"]) or "none"
            if row.get("clean_fails"):
                failing += f" (beyond clean's {', '.join(row['clean_fails'])})"
            if not row["failing"]:
                blind = BLIND_SPOTS.get((row["fault"], row["trainer"]))
                verdict = ("not seen: " + blind if blind else
                           "not seen" + (" (expected!)" if row["primary"] else ""))
            elif row["primary"] is None:
                verdict = "caught"
            else:
                hit = any(f.split(" (")[0] == row["primary"] for f in row["failing"])
                verdict = "caught by its check" if hit else "caught, not by its check"
        lines.append(f"| `{row['fault']}` | {row['trainer']} | {failing} | {primary} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainers", default="dqn,iqn,sac")
    parser.add_argument("--faults", help="only these fault ids (comma-separated)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--json", metavar="PATH", help="also write every verdict as JSON")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    only = set(args.faults.split(",")) if args.faults else None
    result = check_faults([t for t in args.trainers.split(",") if t], args.seed, only,
                          log=lambda text: print(text, file=sys.stderr, flush=True))
    result["seconds"] = time.perf_counter() - start
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    if args.markdown:
        print(markdown(result))
    else:
        for row in result["rows"]:
            print(f"{row['trainer']:<5} {row['fault']:<26} {row['status']:<20} "
                  f"{', '.join(row.get('failing', [])) or row.get('detail', '')}")
    print(f"\ntotal {result['seconds']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
