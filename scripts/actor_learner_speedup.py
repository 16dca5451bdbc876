"""Actor/learner vs single-process DQN at the same updates-per-step ratio, one machine.

    python scripts/actor_learner_speedup.py --steps 100000 --seeds 0 1 --train-frequency 4 32

For each ratio and seed: the single-process trainer, then `--actors` actors, back to back,
printing env steps/s end to end and the actor/learner's stepping-phase rate (`sps_stepping`,
without process start-up). The README's actor/learner table comes from this script.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time

from rlbench.config import DQNConfig
from rlbench.trainers import actor_learner
from rlbench.trainers.dqn_torch import DQNAgent
from rlbench.trainers.q_learning import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train-frequency", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args()
    # Pay the single process's one-off costs (torch's lazy imports on the first optimizer and
    # backward, allocator warm-up) outside the timings; the actor/learner's children pay theirs
    # before stepping starts, which `sps_stepping` excludes.
    fit(DQNConfig(total_steps=1_000, learning_starts=200, eval_interval=1_000, eval_episodes=1),
        DQNAgent, "dqn", progress=False)
    print("| updates per env step | seed | single process | actors, stepping | actors, end to end "
          "| stepping speed-up | final return single / actors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tf in args.train_frequency:
        for seed in args.seeds:
            config = DQNConfig(total_steps=args.steps, seed=seed, train_frequency=tf,
                               eval_interval=args.steps, eval_episodes=10)
            t = time.perf_counter()
            single, _ = fit(config, DQNAgent, "dqn", progress=False)
            single_sps = args.steps / (time.perf_counter() - t)
            t = time.perf_counter()
            with tempfile.TemporaryDirectory() as out:
                multi = actor_learner.train(dataclasses.replace(config, actors=args.actors),
                                            out_dir=out, progress=False)
            multi_sps = args.steps / (time.perf_counter() - t)
            print(f"| 1 : {tf} | {seed} | {single_sps:,.0f} | {multi['sps_stepping']:,.0f} | "
                  f"{multi_sps:,.0f} | {multi['sps_stepping'] / single_sps:.2f}× | "
                  f"{single['final_eval_return']:.1f} / {multi['final_eval_return']:.1f} |",
                  flush=True)


if __name__ == "__main__":  # spawned children re-import this module
    main()
