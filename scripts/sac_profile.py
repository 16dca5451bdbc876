"""Where one SAC update's time goes, and rlbench's update against sbx's own, same process.

    python scripts/sac_profile.py [--width 256] [--repeats 15]

Two measurements, on dmc:cartpole-swingup at rlbench's default SAC settings (batch 256,
K = 16 scanned updates per call), after 1,100 env steps (learning from step 1,000):

1. **Parts of `SACLearner.update_step`**, each jitted alone on one fixed batch from the
   buffer: the TD target (actor on s', both target critics), the critic loss + gradient, the
   actor loss + gradient (through both critics to the action), the three Adam steps + Polyak
   (on gradients of ones), and the whole update. Times are ms per call, `--repeats` blocks of
   20 calls, median and fastest block. The parts overlap in the whole update (XLA fuses
   across them), so they need not add up to it.
2. **Update unit vs sbx** (`benchmarks.peers.update_unit`, as in the asv floors): rlbench's
   `SAC.train_chunk` (K updates in one `lax.scan`) against sbx's
   `SAC.train(gradient_steps=K, batch_size=256)` on an sbx model at the same settings,
   interleaved block by block so load hits both alike; ms per update, wall and process CPU.

`--width 32` runs both with 32-unit layers: what is left there is per-update overhead, not
matrix products. Threads follow `benchmarks._common` (one for torch; XLA's flag). The README's
"SAC vs sbx: where the time goes" comes from this script.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks import _common, peers  # noqa: E402  (sets XLA_FLAGS before JAX starts)

# isort: split
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from flax import nnx  # noqa: E402

from rlbench.trainers.sac_jax import SAC  # noqa: E402
from rlbench.trainers.sac_nets import polyak  # noqa: E402

WARMUP_STEPS = 1_100


def blocks(fns: dict[str, Callable[[], Any]], repeats: int, calls: int,
           per_call: int = 1) -> dict[str, list[tuple[float, float]]]:
    """{name: [(wall ms, CPU ms) per unit of work, one per block]}, blocks interleaved."""
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(calls):
                _common.ready(fn())
            n = calls * per_call
            out[name].append(((time.perf_counter() - wall) / n * 1e3,
                              (time.process_time() - cpu) / n * 1e3))
    return out


def report(title: str, results: dict[str, list[tuple[float, float]]]) -> None:
    print(title)
    for name, rows in results.items():
        wall = [w for w, _ in rows]
        cpu = [c for _, c in rows]
        print(f"  {name:24s} median {statistics.median(wall):7.3f} ms  fastest "
              f"{min(wall):7.3f} ms  CPU {statistics.median(cpu):7.3f} ms")


def parts(sac: SAC) -> dict[str, Callable[[], Any]]:
    """The jitted parts of one update on one fixed batch (see the module docstring)."""
    learner, graphdef, state = sac.learner, sac.graphdef, sac.state
    batch = learner.buffer.sample(sac.buffer_state, learner.batch_size, jax.random.key(1))
    key = jax.random.key(2)

    def target(state):
        model, _ = nnx.merge(graphdef, state)
        return learner.critic_target(model, batch, key)

    def critic_grad(state):
        model, _ = nnx.merge(graphdef, state)

        def loss(critic):
            q1, q2 = critic(batch.obs, batch.action)
            return jnp.mean((q1 - batch.reward) ** 2) + jnp.mean((q2 - batch.reward) ** 2)

        return nnx.grad(loss)(model.critic)

    def actor_grad(state):
        model, _ = nnx.merge(graphdef, state)

        def loss(actor, critic):
            action, log_prob = actor.sample(batch.obs, key)
            q1, q2 = critic(batch.obs, action)
            return jnp.mean(model.temperature() * log_prob - jnp.minimum(q1, q2))

        return nnx.grad(loss)(model.actor, model.critic)

    def optimizers(state):
        model, opt = nnx.merge(graphdef, state)
        for part in ("critic", "actor", "temperature"):
            module = getattr(model, part)
            ones = jax.tree.map(jnp.ones_like, nnx.state(module, nnx.Param))
            getattr(opt, part).update(module, ones)
        nnx.update(model.target_critic, polyak(nnx.state(model.target_critic),
                                               nnx.state(model.critic), learner.tau))
        return nnx.state((model, opt))

    def whole(state):
        model, opt = nnx.merge(graphdef, state)
        learner.update_step(model, opt, batch, key)
        return nnx.state((model, opt))

    fns = {"TD target": target, "critic loss + grad": critic_grad,
           "actor loss + grad": actor_grad, "Adam x3 + Polyak": optimizers,
           "whole update": whole}
    return {name: partial(jax.jit(fn), state) for name, fn in fns.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=256, help="hidden layer width (default 256)")
    parser.add_argument("--repeats", type=int, default=15, help="blocks per timing (default 15)")
    args = parser.parse_args()
    _common.limit_threads()
    config = replace(peers.rlbench_config("sac", 100_000), hidden_sizes=(args.width, args.width))
    sac = SAC(config)
    sac.advance(WARMUP_STEPS)
    print(f"SAC, {config.env_id}, hidden {config.hidden_sizes}, batch {config.batch_size}, "
          f"K = {config.chunk_updates}; jax {jax.__version__}, devices {jax.devices()}")

    fns = parts(sac)
    for fn in fns.values():  # compile outside the timer
        _common.ready(fn())
    report("parts of one update (ms per call):", blocks(fns, args.repeats, calls=20))

    sac.close()
    # The update units of the asv peer floors (`benchmarks.peers.update_unit`), each side
    # built past learning_starts on its own env.
    built = {name: peers.update_unit("sac", side, config)
             for name, side in (("rlbench train_chunk", "rlbench"), ("sbx train", "sbx"))}
    try:
        units = {name: unit for name, (unit, _, _) in built.items()}
        for fn in units.values():  # compile and warm up
            fn()
            fn()
        k = config.chunk_updates
        report(f"update unit of K = {k}, interleaved (ms per update):",
               blocks(units, max(args.repeats // 2, 2), calls=10, per_call=k))
    finally:
        for _, _, close in built.values():
            close()


if __name__ == "__main__":
    main()
