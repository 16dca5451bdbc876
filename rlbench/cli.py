"""The `rlbench` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

DEFAULT_EVAL_ENVS = ("CartPole-v1", "dmc:cartpole-swingup", "probe:5")


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    return "\n".join(lines + [fmt.format(*map(str, r)) for r in rows])


def cmd_envs(args: argparse.Namespace) -> int:
    from rlbench.envs import FAMILIES, list_envs

    rows = [list(r) for r in list_envs()]
    if args.json:
        print(json.dumps([dict(zip(("id", "family", "description"), r)) for r in rows], indent=2))
        return 0
    print(_table(rows, ["id", "family", "description"]))
    print("\nfamilies:\n" + "\n".join(f"  {k:<10} {v}" for k, v in FAMILIES.items()))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from rlbench.envs import make
    from rlbench.evaluation import evaluate, random_policy

    rows, records = [], []
    for env_id in args.env or DEFAULT_EVAL_ENVS:
        t0 = time.perf_counter()
        policy = random_policy(make(env_id), args.seed)
        result = evaluate(policy, env_id, args.episodes, args.seed)
        seconds = time.perf_counter() - t0
        family = env_id.split(":")[0] if ":" in env_id else "gymnasium"
        records.append({"env": env_id, "policy": "random", "seconds": seconds, **result.to_dict()})
        rows.append([
            env_id, family, "random", f"{result.completed}/{result.episodes}",
            f"{sum(result.lengths) / len(result.lengths):.1f}",
            f"{result.mean_return:.2f} ± {result.std_return:.2f}", f"{seconds:.2f}",
        ])
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(_table(rows, ["env", "family", "policy", "completed", "mean length",
                            "return (mean ± std)", "seconds"]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlbench",
        description="Reference RL trainers and the suite that keeps them honest.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("envs", help="list the environment id families")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_envs)

    p = sub.add_parser("eval", help="evaluate a random policy with the evaluation protocol")
    p.add_argument("--env", action="append", metavar="ID",
                   help=f"env id (repeatable; default: {', '.join(DEFAULT_EVAL_ENVS)})")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:  # bad input: a clear message, not a traceback
        print(f"rlbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
