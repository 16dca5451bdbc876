"""The `rlbench` command line."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rlbench.tables import text_table

DEFAULT_EVAL_ENVS = ("CartPole-v1", "dmc:cartpole-swingup", "probe:5")
SUBCOMMAND_MODULES = (
    "rlbench.faults.cli",  # `rlbench faults {list,verify,impact}`
    "rlbench.curves.cli",  # `rlbench nightly --profile quick|full|FILE.toml`
    "rlbench.curves.ab",  # `rlbench compare RUN_DIR_A RUN_DIR_B`: A/B with the nightly rule
    "rlbench.exports",  # `rlbench export RUN_DIR... --csv OUT.csv`: tidy learning curves
    "rlbench.mutate.cli",  # `rlbench mutate`: RL-aware mutation testing
    "rlbench.check.cli",  # `rlbench check ALGO`: the check battery on any trainer
)


def cmd_envs(args: argparse.Namespace) -> int:
    from rlbench.envs import FAMILIES, list_envs

    rows = [list(r) for r in list_envs()]
    if args.json:
        print(json.dumps([dict(zip(("id", "family", "description"), r)) for r in rows], indent=2))
        return 0
    print(text_table(rows, ["id", "family", "description"]))
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
        print(text_table(rows, ["env", "family", "policy", "completed", "mean length",
                            "return (mean ± std)", "seconds"]))
    return 0


# Short spellings of the fields everyone sets; every other field is --its-name.
FIELD_ALIASES = {"env_id": ("--env",), "total_steps": ("--steps",)}


def train_parser(algo: str) -> argparse.ArgumentParser:
    """`rlbench train ALGO`'s options, generated from the trainer's config dataclass: one
    flag per field with its type, default and docstring (built-in or plugin alike)."""
    import dataclasses
    import typing

    from rlbench.api import get_spec
    from rlbench.config import _type_name, field_docs
    from rlbench.runs import TRACKERS

    spec = get_spec(algo)
    p = argparse.ArgumentParser(
        prog=f"rlbench train {algo}",
        description=f"{spec.summary or algo}. Writes summary.json + metrics.jsonl to --out.",
        epilog="Values parse by the field's type (tuples: comma-separated, e.g. 64,64). "
               "--set NAME=VALUE sets any field too (kept for scripts).")
    p.add_argument("--out", help="run folder (default runs/<algo>-<env>-s<seed>)")
    p.add_argument("--set", action="append", default=[], type=_key_value, metavar="NAME=VALUE",
                   help="override any config field, e.g. --set learning_rate=3e-4 (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--track", action="append", choices=TRACKERS, default=[],
                   help="also log to a tracker in the run folder (repeatable): tensorboard "
                        "(event files in OUT/tensorboard with openrlbenchmark tags "
                        "charts/episodic_return, charts/SPS, losses/..., eval/return; "
                        "pip install 'rlbench[track]') or wandb (an offline run in OUT/wandb; "
                        "needs wandb installed)")
    if spec.presets:
        p.add_argument("--preset", choices=sorted(spec.presets),
                       help="named settings applied before the flags: " + "; ".join(
                           f"{k}: " + ", ".join(f"{f}={v}" for f, v in c.items())
                           for k, c in spec.presets.items()))
    group = p.add_argument_group(f"{spec.config.__name__} fields")
    docs = field_docs(spec.config)
    hints = typing.get_type_hints(spec.config)
    defaults = spec.config()
    for f in dataclasses.fields(spec.config):
        flags = (*FIELD_ALIASES.get(f.name, ()), "--" + f.name.replace("_", "-"))
        default = getattr(defaults, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        group.add_argument(*flags, dest=f.name, metavar=_type_name(hints[f.name]).upper(),
                           help=f"{docs.get(f.name, '')} (default: {shown})".strip())
    return p


def cmd_train(args: argparse.Namespace) -> int:
    import dataclasses

    from rlbench.api import get_spec, replace_config, train
    from rlbench.config import with_overrides
    from rlbench.runs import tracking

    opts = train_parser(args.algo).parse_args(args.options)
    spec = get_spec(args.algo)
    config = spec.config()
    if getattr(opts, "preset", None):
        config = replace_config(config, **spec.presets[opts.preset])
    given = {f.name: getattr(opts, f.name) for f in dataclasses.fields(config)
             if getattr(opts, f.name) is not None}
    # Flags and --set parse alike (by the field's type; errors name the field); --set wins.
    config = with_overrides(config, given | dict(kv.split("=", 1) for kv in opts.set))
    out = opts.out or f"runs/{args.algo}-{config.env_id.replace(':', '_')}-s{config.seed}"
    try:  # a run folder that cannot exist is bad input: say so before anything trains
        Path(out).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot create the run folder ({exc.strerror or exc})") from None
    with tracking(*opts.track):  # the trainer's RunRecorder feeds these trackers too
        summary = train(args.algo, config, out_dir=out, progress=not opts.quiet)
    print(json.dumps({k: summary.get(k) for k in
                      ("algo", "backend", "env", "seed", "steps", "final_eval_return", "sps",
                       "wall_seconds")} | {"out": out}, indent=2))
    return 0


def _key_value(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    return text


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

    from rlbench.api import plugin_origin, trainer_names
    from rlbench.trainers import TRAINERS

    names = trainer_names()  # built-ins and installed plugins (entry points, not imported)
    p = sub.add_parser(
        "train", help="train one algorithm, writing summary.json + metrics.jsonl",
        description="Train one algorithm. `rlbench train ALGO --help` lists every field of "
                    "ALGO's config as a flag, with its default and meaning.")
    p.add_argument("algo", choices=names,
                   help="; ".join(f"{n}: {TRAINERS[n].summary if n in TRAINERS else plugin_origin(n)}"
                                  for n in names))
    p.add_argument("options", nargs=argparse.REMAINDER,
                   help="--env ID --steps N --seed S --out DIR --actors N --faults F,... "
                        "--set NAME=VALUE --track tensorboard, and one flag per config field")
    p.set_defaults(func=cmd_train)

    for module in SUBCOMMAND_MODULES:  # each adds its own subcommands with `add_parser(sub)`
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rlbench.trainers import BackendMissing  # light: the registry imports no backend

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, BackendMissing) as exc:  # bad input: a clear message, not a traceback
        print(f"rlbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rlbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
