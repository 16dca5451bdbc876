"""rlbench DQN / SAC against CleanRL's own `cleanrl/dqn.py` / `cleanrl/sac_continuous_action.py`,
at CleanRL's settings, same machine.

    make peers-cleanrl                      # CleanRL's venv + source under .peers/
    python scripts/vs_cleanrl.py --algo dqn --steps 500000 --pairs 3 --json out/dqn_vs_cleanrl.json
    python scripts/vs_cleanrl.py --algo sac --steps 30000 --pairs 2 --set chunk-updates=16

What it measures: the cost of one run of `--steps` env steps on each side, each a child process
timed from spawn to exit (interpreter start, imports, env and network construction, training,
logging, shutdown), as wall seconds and the child's CPU seconds (user + system, from
`os.wait4`). The two sides run back to back, CleanRL first, `--pairs` times; each pair prints
wall s, CPU s and steps/s per side and the ratios rlbench ÷ CleanRL in speed (CleanRL's seconds
over rlbench's: above 1 means rlbench is faster), then the median over pairs. The README's
CleanRL rows come from this script.

The CleanRL side is CleanRL's code unmodified, as published: the algorithm's script and
`cleanrl_utils/` from a CleanRL commit (`make peers-cleanrl` extracts them with `git archive`
and records the commit, which the output repeats with the git blob id of the script it ran),
run with its own interpreter (`.peers/cleanrl-venv`: gymnasium 0.29.1 as CleanRL pins, our
CPU torch 2.13.0 instead of its 2.4.1) as

    python cleanrl/<script> --env-id ENV --total-timesteps N --seed 1 --no-cuda

in a fresh temporary working directory (it writes `runs/`), with PYTHONPATH at the source
root for `cleanrl_utils`. Every other setting is CleanRL's default:

- DQN on CartPole-v1: learning starts at step 10,000, one update every 10 steps, batch 128,
  buffer 10,000, Adam 2.5e-4, MSE loss, target copy every 500 env steps, epsilon 1 → 0.05
  over half the run, a 120-84 MLP.
- SAC on Pendulum-v1 (CleanRL's SAC takes gymnasium Box observations only, so not
  dm_control's dict ones): 256-256 MLPs, batch 256, buffer 1e6, learning starts at step
  5,000, then one critic update per env step, Adam 3e-4 (actor) and 1e-3 (critics and the
  temperature), tau 0.005, learned temperature from alpha = 1 towards −|A|.

The rlbench side runs `rlbench train ALGO` with the same settings from rlbench's venv (the
interpreter running this script), with one evaluation at the end (`--eval-episodes` greedy
episodes, charged to rlbench's time); `--set FIELD=VALUE` changes an rlbench field (e.g.
SAC's `chunk-updates`, which defaults here to CleanRL's one update per step).

What differs, by design, because each side runs as published:
- threads: CleanRL keeps torch's default intra-op thread count (one per core); rlbench's DQN
  pins one torch thread, its SAC keeps XLA's default. Wall time shows what a user sees; CPU
  time shows the work, including what the extra threads burn.
- logging: CleanRL writes TensorBoard scalars (and prints SPS every 100 steps); that is part
  of its published cost. rlbench writes its metrics.jsonl and summary.json.
- DQN: rlbench clips the global gradient norm at 10 on every update (it has no switch to
  turn this off); CleanRL does not clip.
- SAC: CleanRL updates the actor (and temperature) twice every second step (TD3-style
  delay, the same number of actor updates) and re-samples the policy once more for each
  temperature step; rlbench updates critic, actor and temperature once per step.
- the interpreters differ (each side's venv), and so do the gymnasium versions (0.29.1 for
  CleanRL, ours for rlbench).

Both sides' learning is reported so a reader sees both learned: CleanRL's last printed SPS,
its last episodic return and the mean of its last 10, and rlbench's final evaluation return.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SEED = 1
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PEER_PYTHON = ROOT / ".peers" / "cleanrl-venv" / "bin" / "python"
DEFAULT_CLEANRL_SRC = ROOT / ".peers" / "cleanrl-src"
SETUP_HINT = "run `make peers-cleanrl` (or pass --peer-python / --cleanrl-src)"

@dataclass(frozen=True)
class Peer:
    """One algorithm's CleanRL script and the rlbench settings equal to its defaults."""

    script: str  # path under the CleanRL source root
    env: str
    learning_starts: int
    rlbench: dict[str, str]  # `rlbench train ALGO --FLAG=VALUE` settings


PEERS = {
    # rlbench's DQN target period counts gradient updates, CleanRL's env steps: 500 env steps
    # at one update per 10 steps = 50 updates.
    "dqn": Peer("cleanrl/dqn.py", "CartPole-v1", 10_000, {
        "env": "CartPole-v1", "device": "cpu", "learning-rate": "2.5e-4",
        "lr-schedule": "constant", "buffer-size": "10000", "batch-size": "128", "gamma": "0.99",
        "target-update": "hard", "target-update-interval": "50", "train-frequency": "10",
        "gradient-steps": "1", "learning-starts": "10000", "epsilon-start": "1.0",
        "epsilon-min": "0.05", "exploration-fraction": "0.5", "loss": "mse",
        "hidden-sizes": "120,84", "double-q": "false", "max-grad-norm": "10.0",
        "torch-threads": "1",
    }),
    "sac": Peer("cleanrl/sac_continuous_action.py", "Pendulum-v1", 5_000, {
        "env": "Pendulum-v1", "device": "cpu", "hidden-sizes": "256,256",
        "buffer-size": "1000000", "batch-size": "256", "gamma": "0.99", "tau": "0.005",
        "policy-lr": "3e-4", "q-lr": "1e-3", "alpha-lr": "1e-3", "autotune": "true",
        "init-alpha": "1.0", "learning-starts": "5000", "utd-ratio": "1.0",
        "chunk-updates": "1",
    }),
}


class SetupError(SystemExit):
    pass


def git_blob_id(path: Path) -> str:
    """The id git gives this file's bytes (`git hash-object`), comparable with `git ls-tree`."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id


def cleanrl_commit(src: Path) -> str:
    recorded = src / "COMMIT"
    if recorded.is_file():
        return recorded.read_text().strip()
    try:  # a CleanRL checkout passed with --cleanrl-src
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, check=True)
        dirty = subprocess.run(["git", "-C", str(src), "diff", "--quiet", "HEAD", "--",
                                *(p.script for p in PEERS.values()), "cleanrl_utils"],
                               check=False).returncode
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def check_setup(peer: Peer, peer_python: Path, src: Path) -> None:
    if not (peer_python.is_file() and os.access(peer_python, os.X_OK)):
        raise SetupError(f"vs_cleanrl: CleanRL's python {peer_python} is missing: {SETUP_HINT}")
    missing = [p for p in (peer.script, "cleanrl_utils/buffers.py") if not (src / p).is_file()]
    if missing:
        raise SetupError(f"vs_cleanrl: CleanRL source {src} lacks {', '.join(missing)}: "
                         f"{SETUP_HINT}")


def timed(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[dict, str]:
    """Run `cmd` as a child; its wall time from spawn to exit, its CPU time, its output."""
    log = cwd / "output.log"
    with log.open("w") as out:
        wall = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - wall
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: tell Popen
    text = log.read_text(errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-30:])
        raise SystemExit(f"vs_cleanrl: {' '.join(cmd)} exited {proc.returncode}:\n{tail}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "max_rss_mib": usage.ru_maxrss / 1024}, text


_RETURN = re.compile(r"episodic_return=\[?\s*([-+0-9.eE]+)")
_SPS = re.compile(r"^SPS:\s*([0-9]+)", re.MULTILINE)


def run_cleanrl(peer: Peer, steps: int, peer_python: Path, src: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    with tempfile.TemporaryDirectory(prefix="cleanrl-") as tmp:
        result, text = timed([str(peer_python), str(src / peer.script),
                              "--env-id", peer.env, "--total-timesteps", str(steps),
                              "--seed", str(SEED), "--no-cuda"], Path(tmp), env)
    returns = [float(r) for r in _RETURN.findall(text)]
    sps = _SPS.findall(text)
    result.update(
        episodes=len(returns),
        last_episodic_return=returns[-1] if returns else None,
        mean_last10_episodic_return=statistics.fmean(returns[-10:]) if returns else None,
        reported_sps=int(sps[-1]) if sps else None)
    return result


def rlbench_command() -> list[str]:
    script = Path(sys.executable).with_name("rlbench")  # the console script of this venv
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from rlbench.cli import main; sys.exit(main())"]


def run_rlbench(algo: str, settings: dict[str, str], steps: int, eval_episodes: int) -> dict:
    import json

    with tempfile.TemporaryDirectory(prefix="rlbench-") as tmp:
        out = Path(tmp) / "run"
        flags = [f"--{k}={v}" for k, v in settings.items()]
        result, _ = timed([*rlbench_command(), "train", algo, "--quiet", "--out", str(out),
                           "--seed", str(SEED), "--steps", str(steps),
                           "--eval-interval", str(steps), "--eval-episodes", str(eval_episodes),
                           *flags], Path(tmp))
        summary = json.loads((out / "summary.json").read_text())
    result.update(final_eval_return=summary.get("final_eval_return"),
                  reported_sps=summary.get("sps"), steps_done=summary.get("steps"))
    return result


def atomic_write_json(path: Path, obj: dict) -> None:
    try:
        from rlbench.runs import atomic_write_json as write
    except ImportError:  # not run from the rlbench venv: the same write by hand
        import json

        def write(p: Path, o: dict) -> None:
            tmp = Path(p).with_name(Path(p).name + ".tmp")
            tmp.write_text(json.dumps(o, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, p)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    write(path, obj)


def fmt(x: float | None, spec: str = ",.1f") -> str:
    return "–" if x is None else format(x, spec)


def parse_sets(items: list[str]) -> dict[str, str]:
    """`--set FIELD=VALUE` pairs → {FIELD: VALUE} (flag spelling: chunk-updates)."""
    out = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise SystemExit(f"vs_cleanrl: --set takes FIELD=VALUE, got {item!r}")
        out[field.strip().replace("_", "-")] = value.strip()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algo", choices=sorted(PEERS), default="dqn",
                        help="dqn (cleanrl/dqn.py, CartPole-v1) or sac "
                             "(cleanrl/sac_continuous_action.py, Pendulum-v1); default dqn")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps per run (default: 500000 for dqn, CleanRL's default; "
                             "30000 for sac)")
    parser.add_argument("--pairs", type=int, default=3, help="back-to-back pairs (default: 3)")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON,
                        help=f"CleanRL's interpreter (default: {DEFAULT_PEER_PYTHON.relative_to(ROOT)})")
    parser.add_argument("--cleanrl-src", type=Path, default=DEFAULT_CLEANRL_SRC,
                        help="root holding the CleanRL scripts and cleanrl_utils/ "
                             f"(default: {DEFAULT_CLEANRL_SRC.relative_to(ROOT)})")
    parser.add_argument("--eval-episodes", type=int, default=10,
                        help="rlbench's final greedy evaluation, timed with it (default: 10)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change one rlbench setting (repeatable), e.g. chunk-updates=16")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    args = parser.parse_args()
    peer = PEERS[args.algo]
    steps = args.steps if args.steps is not None else {"dqn": 500_000, "sac": 30_000}[args.algo]
    if steps <= peer.learning_starts:
        parser.error(f"--steps must exceed {peer.learning_starts}: CleanRL's {peer.script} "
                     f"learns from step {peer.learning_starts:,}")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    settings = {**peer.rlbench, **parse_sets(args.set)}
    peer_python, src = args.peer_python.absolute(), args.cleanrl_src.absolute()
    check_setup(peer, peer_python, src)
    commit = cleanrl_commit(src)
    blob = git_blob_id(src / peer.script)
    print(f"CleanRL {commit} ({peer.script} blob {blob}), {peer.env}, {steps:,} steps, "
          f"{args.pairs} pair(s), {os.cpu_count()} CPUs; rlbench {args.algo} with "
          + " ".join(f"--{k}={v}" for k, v in settings.items()))
    print("| pair | CleanRL wall s / CPU s / steps/s | rlbench wall s / CPU s / steps/s "
          "| ratio wall | ratio CPU | CleanRL last10 return / SPS | rlbench eval return |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    pairs = []
    for pair in range(1, args.pairs + 1):
        c = run_cleanrl(peer, steps, peer_python, src)
        r = run_rlbench(args.algo, settings, steps, args.eval_episodes)
        for side in (c, r):
            side["steps_per_s_wall"] = steps / side["wall_s"]
            side["steps_per_s_cpu"] = steps / side["cpu_s"]
        row = {"pair": pair, "cleanrl": c, "rlbench": r,
               "ratio_wall": c["wall_s"] / r["wall_s"], "ratio_cpu": c["cpu_s"] / r["cpu_s"]}
        pairs.append(row)
        print(f"| {pair} | {c['wall_s']:.1f} / {c['cpu_s']:.1f} / {c['steps_per_s_wall']:,.0f} "
              f"| {r['wall_s']:.1f} / {r['cpu_s']:.1f} / {r['steps_per_s_wall']:,.0f} "
              f"| {row['ratio_wall']:.2f}× | {row['ratio_cpu']:.2f}× "
              f"| {fmt(c['mean_last10_episodic_return'])} / {fmt(c['reported_sps'], ',')} "
              f"| {fmt(r['final_eval_return'])} |", flush=True)
    median = {"ratio_wall": statistics.median(p["ratio_wall"] for p in pairs),
              "ratio_cpu": statistics.median(p["ratio_cpu"] for p in pairs)}
    print(f"median over {len(pairs)} pair(s): rlbench ÷ CleanRL speed "
          f"{median['ratio_wall']:.2f}× wall, {median['ratio_cpu']:.2f}× per CPU-second")
    if args.json:
        atomic_write_json(args.json, {
            "what": f"rlbench {args.algo} vs CleanRL {peer.script} (unmodified), {peer.env}, "
                    "spawn-to-exit child wall and CPU time; ratios = CleanRL s / rlbench s",
            "algo": args.algo, "env": peer.env,
            "cleanrl_commit": commit, "cleanrl_script": peer.script, "cleanrl_script_blob": blob,
            "peer_python": str(peer_python), "cleanrl_src": str(src),
            "steps": steps, "seed": SEED, "cpus": os.cpu_count(),
            "rlbench_settings": settings, "eval_episodes": args.eval_episodes,
            "pairs": pairs, "median": median})
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
