"""Peers (optional): rlbench's training steps/s against Stable-Baselines3 and sbx at equal
settings, measured back to back in one process on one machine, reported as ratios.

Select with ``asv run --python=same -b peers``; a peer library that is not installed is
skipped (``pip install --group bench``). The ratios are what the README's speed claims quote:
``track_speedup`` = rlbench steps/s ÷ peer steps/s, higher is better (asv's compare assumes
lower is better, so read its "regressed" on this row as "rlbench got relatively faster").

Steps/s is steady-state: each side trains twice (a short and a long budget, after a warm-up
run) and the rate is the extra steps over the extra wall time, which cancels every fixed cost
(imports, construction, JIT compilation, rlbench's final evaluation episode) on both sides
alike. ``track_speedup_cpu`` is the same ratio in steps per CPU second (process + children),
the number to trust on a busy shared machine. ``track_speedup_end_to_end`` keeps the fixed
costs: the long run's steps / wall time.

Equal settings: the same env, batch size, buffer size, learning rate, discount, replay ratio
and its grouping (DQN: train frequency × gradient steps; SAC: rlbench's K-update chunks are
the peers' train_freq = gradient_steps = K), target-update period (converted to the peer's env-step
units), exploration schedule, learning_starts and budget, hidden widths; the same thread limits
on both sides (benchmarks._common.THREADS: one for torch; XLA's matrix products still take a
second thread in jaxlib 0.10.2). Differences the peers do not let us
remove: sbx DQN has no gradient clipping and uses equal hidden widths (120, 120 for rlbench's
120, 84); SB3/sbx wrap the env in a VecEnv + Monitor (their real cost).

Beside each side's rate, its physical floor (``track_*_floor_sps``): one raw env step plus its
share of the side's own update, each timed alone, so steady ÷ floor shows what each loop adds.

``PeersCleanRL`` (same ``-b peers`` run) measures CleanRL's own scripts, which are not a
library: they run unmodified in their venv (``make peers-cleanrl``; skipped without it) as
child processes at CleanRL's settings, with rlbench at the same settings.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import (
    cpu_seconds,
    limit_threads,
    require,
    require_trainer,
    result_or_skip_reason,
    skip_if_missing,
    timed,
)

ALGOS = ("dqn", "sac")
PEERS = ("sb3", "sbx")
PEER_MODULES = {"sb3": "stable_baselines3", "sbx": "sbx"}
Results = dict[str, Any]  # '<algo>/<side>' → {"steady", "steady_cpu", "end_to_end"} | skip reason

LEARNING_STARTS = 1_000
# Two budgets per side: steps/s = (long - short) / (t_long - t_short) is the steady training
# rate with every fixed cost (imports, construction, JIT compilation, final evaluation)
# cancelled on both sides alike. SAC updates every env step, DQN every 4th.
BUDGETS = {"dqn": (5_000, 20_000), "sac": (1_500, 3_000)}
ENV = {"dqn": "CartPole-v1", "sac": "dmc:cartpole-swingup"}


def rlbench_config(algo: str, total_steps: int) -> Any:
    """The rlbench config both sides run: trainer defaults plus the benchmark budget.

    DQN uses the Huber loss here because SB3 and sbx hard-code it.
    """
    module = require_trainer(algo)
    changes: dict[str, Any] = dict(
        env_id=ENV[algo], total_steps=total_steps, learning_starts=LEARNING_STARTS,
        eval_interval=total_steps, eval_episodes=1, seed=0, device="cpu",
    )
    if algo == "dqn":
        changes["loss"] = "huber"
    return module.Config(**changes)


def peer_kwargs(algo: str, peer: str, c: Any) -> dict[str, Any]:
    """The peer's constructor arguments equal to rlbench config `c`."""
    if algo == "dqn":
        kwargs = dict(
            learning_rate=c.learning_rate, buffer_size=c.buffer_size,
            learning_starts=c.learning_starts, batch_size=c.batch_size, gamma=c.gamma,
            train_freq=c.train_frequency, gradient_steps=c.gradient_steps,
            # rlbench counts the target period in gradient updates, the peers in env steps.
            target_update_interval=c.target_update_interval * c.train_frequency // c.gradient_steps,
            tau=c.tau if c.target_update == "soft" else 1.0,
            exploration_fraction=c.exploration_fraction,
            exploration_initial_eps=c.epsilon_start, exploration_final_eps=c.epsilon_min,
            policy_kwargs=dict(net_arch=list(c.hidden_sizes)),
        )
        if peer == "sb3":
            kwargs["max_grad_norm"] = c.max_grad_norm
        return kwargs
    # SAC: utd_ratio 1 in chunks of K = chunk_updates, i.e. the peers' "collect K steps, then
    # K gradient steps" (same updates, same data, same policy lag); learned temperature.
    if c.utd_ratio != 1.0:
        raise ValueError(f"peers compare SAC at utd_ratio 1, got {c.utd_ratio}")
    return dict(
        learning_rate=c.policy_lr, buffer_size=c.buffer_size, learning_starts=c.learning_starts,
        batch_size=c.batch_size, tau=c.tau, gamma=c.gamma,
        train_freq=c.chunk_updates, gradient_steps=c.chunk_updates,
        ent_coef=f"auto_{c.init_alpha}" if c.autotune else c.init_alpha,
        target_entropy="auto" if c.target_entropy is None else c.target_entropy,
        policy_kwargs=dict(net_arch=list(c.hidden_sizes)),
    )


def run_seconds(algo: str, side: str, total_steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds of one complete training run (construction included) on `side`."""
    c = rlbench_config(algo, total_steps)
    limit_threads()
    if side == "rlbench":
        trainers = require("rlbench.trainers")
        wall, cpu = time.perf_counter(), cpu_seconds()
        trainers.train(algo, c, progress=False)
        return time.perf_counter() - wall, cpu_seconds() - cpu
    wall, cpu = time.perf_counter(), cpu_seconds()
    model = _peer_model(algo, side, c)
    model.learn(total_timesteps=c.total_steps)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    model.get_env().close()
    return wall, cpu


def _peer_model(algo: str, side: str, c: Any) -> Any:
    """The peer's DQN/SAC on a fresh rlbench env, at the settings equal to config `c`."""
    lib = require(PEER_MODULES[side])
    env = require("rlbench.envs").make(c.env_id, seed=c.seed)
    extra = {"device": "cpu"} if side == "sb3" else {}
    return getattr(lib, algo.upper())(
        "MlpPolicy", env, seed=c.seed, verbose=0, **extra, **peer_kwargs(algo, side, c)
    )


def env_step_seconds(algo: str, steps: int = 3_000) -> float:
    """Wall seconds of one raw env step (random actions, resets included as they come): the
    fastest block of 100 steps, after a warm-up block. The env's part of every side's floor."""
    envs = require("rlbench.envs")
    env = envs.make(ENV[algo], seed=0)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(256)]
    blocks = []
    for block in range(-1, steps // 100):  # block -1 warms up (physics, caches)
        start = time.perf_counter()
        for i in range(100):
            _, _, terminated, truncated, _ = env.step(actions[(100 * block + i) % len(actions)])
            if terminated or truncated:
                env.reset()
        if block >= 0:
            blocks.append((time.perf_counter() - start) / 100)
    env.close()
    return min(blocks)


def update_unit(algo: str, side: str, c: Any) -> tuple[Callable[[], Any], int, Callable[[], None]]:
    """(one update unit of `side`, the env steps it serves, close), built past learning_starts.

    The unit is what the side's loop runs between env steps, with its replay sampling:
    DQN's `gradient_steps` updates every `train_frequency` steps, SAC's K-update chunk every
    K steps. rlbench's DQN unit includes its target-network check; SB3/sbx update their DQN
    targets in their per-step callback instead, outside the unit (a copy every 400 steps).
    """
    if algo == "dqn":
        g, per = c.gradient_steps, c.train_frequency
    else:
        g = per = c.chunk_updates
    if side == "rlbench":
        trainer = require_trainer(algo).SPEC.make(c)
        trainer.advance(c.learning_starts + per)
        if algo == "sac":
            def sac_unit() -> Any:
                trainer.train_chunk()
                return trainer.state  # `timed` waits for it

            return sac_unit, per, trainer.close
        agent, buffer, rng = trainer.agent, trainer.buffer, trainer.rng

        def dqn_unit() -> None:
            for _ in range(g):
                agent.update(buffer.sample(c.batch_size, rng))  # returns floats: synced

        return dqn_unit, per, trainer.close
    model = _peer_model(algo, side, c)
    model.learn(total_timesteps=c.learning_starts + per)
    # SB3 is synchronous on CPU; sbx's train() ends in .item() on its losses (a sync).
    return lambda: model.train(gradient_steps=g, batch_size=c.batch_size), per, model.get_env().close


def floor_sps(algo: str, sides: list[str], calls: int = 30) -> dict[str, float]:
    """The physical floor of each of `sides` at the benchmark settings, in env steps per
    second: one raw env step plus the side's share of its own update unit, each timed alone.

    Both parts are the fastest of their repeats (`calls` units after 3 warm-up calls): on a
    shared machine noise only ever adds time, so the minimum is the estimate of what the
    hardware allows. The sides' units are timed round-robin, one call each in turn, so a
    change in the machine's speed (other tenants) hits every side alike and the floors stay
    comparable; timed minutes apart they moved by up to 2x against each other. No loop that
    steps this env and updates this often runs faster; steady ÷ floor is the share of a
    side's time that is env and update, the rest is its own loop.
    """
    c = rlbench_config(algo, BUDGETS[algo][1])
    limit_threads()
    units: dict[str, tuple[Callable[[], Any], int, Callable[[], None]]] = {}
    try:
        for side in sides:
            units[side] = update_unit(algo, side, c)
        best = dict.fromkeys(sides, float("inf"))
        for call in range(calls + 3):
            for side, (unit, _, _) in units.items():
                seconds = timed(unit)[1]
                if call >= 3:
                    best[side] = min(best[side], seconds)
    finally:
        for _, _, close in units.values():
            close()
    env = env_step_seconds(algo)
    return {side: 1.0 / (env + best[side] / units[side][1]) for side in sides}


def two_budget_rates(short: int, long: int, short_run: tuple[float, float],
                     long_run: tuple[float, float]) -> dict[str, float]:
    """From (wall, CPU) seconds of a `short`- and a `long`-step run: steady steps per wall and
    per CPU second (the difference cancels every fixed cost), and the long run's end-to-end
    steps per wall second."""
    (wall_short, cpu_short), (wall_long, cpu_long) = short_run, long_run
    return {
        "steady": (long - short) / (wall_long - wall_short),
        "steady_cpu": (long - short) / (cpu_long - cpu_short),
        "end_to_end": long / wall_long,
    }


def measure(algo: str, side: str) -> dict[str, float]:
    """`two_budget_rates` of `side` at the benchmark budgets, after a warm-up run."""
    short, long = BUDGETS[algo]
    run_seconds(algo, side, LEARNING_STARTS + 100)  # warm-up: imports, first-call costs
    return two_budget_rates(short, long, run_seconds(algo, side, short),
                            run_seconds(algo, side, long))


def measure_all() -> Results:
    """'<algo>/<side>' → its `measure` numbers plus its "floor" (`floor_sps`, the sides of
    one algorithm timed together), or why the side was skipped."""
    results: Results = {f"{algo}/{side}": result_or_skip_reason(measure, algo, side)
                        for algo in ALGOS for side in ("rlbench", *PEERS)}
    for algo in ALGOS:
        sides = [side for side in ("rlbench", *PEERS)
                 if not isinstance(results[f"{algo}/{side}"], str)]
        for side, floor in floor_sps(algo, sides).items():
            results[f"{algo}/{side}"]["floor"] = floor
    return results


class Peers:
    """rlbench vs peer training steps/s, all from one `setup_cache` run (same machine, back to
    back, so the machine's load affects both sides alike)."""

    params = [list(ALGOS), list(PEERS)]
    param_names = ["algo", "peer"]
    timeout = 1800

    def setup_cache(self) -> Results:
        return measure_all()

    setup_cache.timeout = 3600  # type: ignore[attr-defined]

    def setup(self, results: Results, algo: str, peer: str) -> None:
        skip_if_missing(results[f"{algo}/rlbench"], results[f"{algo}/{peer}"])

    def _ratio(self, results: Results, algo: str, peer: str, key: str) -> float:
        return results[f"{algo}/rlbench"][key] / results[f"{algo}/{peer}"][key]

    def track_speedup(self, results: Results, algo: str, peer: str) -> float:
        """Steady rlbench steps/s ÷ steady peer steps/s (2.0 = rlbench trains twice as fast)."""
        return self._ratio(results, algo, peer, "steady")

    track_speedup.unit = "x (rlbench/peer)"  # type: ignore[attr-defined]

    def track_speedup_cpu(self, results: Results, algo: str, peer: str) -> float:
        """The steady ratio in steps per CPU second: on a busy shared machine this is the
        trustworthy one (wall time there mostly measures the other tenants)."""
        return self._ratio(results, algo, peer, "steady_cpu")

    track_speedup_cpu.unit = "x (rlbench/peer)"  # type: ignore[attr-defined]

    def track_speedup_end_to_end(self, results: Results, algo: str, peer: str) -> float:
        """The same ratio over the whole long run (compilation and start-up included)."""
        return self._ratio(results, algo, peer, "end_to_end")

    track_speedup_end_to_end.unit = "x (rlbench/peer)"  # type: ignore[attr-defined]

    def track_time_vs_peer(self, results: Results, algo: str, peer: str) -> float:
        """rlbench's steady time per env step ÷ the peer's (1 / track_speedup): the gate.
        Lower is better, so `asv continuous -f 1.1 -b time_vs_peer` fails when rlbench loses
        >10% of its lead between two commits."""
        return 1.0 / self._ratio(results, algo, peer, "steady")

    track_time_vs_peer.unit = "x (rlbench time / peer time)"  # type: ignore[attr-defined]

    def track_rlbench_sps(self, results: Results, algo: str, peer: str) -> float:
        return results[f"{algo}/rlbench"]["steady"]

    track_rlbench_sps.unit = "env steps/s"  # type: ignore[attr-defined]

    def track_peer_sps(self, results: Results, algo: str, peer: str) -> float:
        return results[f"{algo}/{peer}"]["steady"]

    track_peer_sps.unit = "env steps/s"  # type: ignore[attr-defined]

    def track_rlbench_floor_sps(self, results: Results, algo: str, peer: str) -> float:
        """rlbench's physical floor (`floor_sps`): one env step + its share of one update unit."""
        return results[f"{algo}/rlbench"]["floor"]

    track_rlbench_floor_sps.unit = "env steps/s"  # type: ignore[attr-defined]

    def track_peer_floor_sps(self, results: Results, algo: str, peer: str) -> float:
        """The peer's floor, from its own update (`model.train`) and the same env step."""
        return results[f"{algo}/{peer}"]["floor"]

    track_peer_floor_sps.unit = "env steps/s"  # type: ignore[attr-defined]


# CleanRL ----------------------------------------------------------------------------------
# CleanRL is a set of scripts, not a library: its own dqn.py / sac_continuous_action.py run
# unmodified in their own venv (`make peers-cleanrl`) through scripts/vs_cleanrl.py, at
# CleanRL's settings (DQN CartPole-v1, SAC Pendulum-v1; that script's docstring lists them
# and what differs). rlbench runs the same settings through its CLI, so these rows are not
# comparable with the SB3/sbx rows above (other settings, other env for SAC).
CLEANRL_BUDGETS = {"dqn": (20_000, 60_000), "sac": (6_000, 10_000)}  # learning from 10k / 5k


def vs_cleanrl() -> Any:
    """scripts/vs_cleanrl.py as a module, set up; asv's skip when `make peers-cleanrl` has not
    run (or the script does not exist at this commit)."""
    path = Path(__file__).resolve().parent.parent / "scripts" / "vs_cleanrl.py"
    if not path.is_file():
        raise NotImplementedError(f"{path} does not exist at this commit")
    module = sys.modules.get("vs_cleanrl")
    if module is None:
        spec = importlib.util.spec_from_file_location("vs_cleanrl", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["vs_cleanrl"] = module  # dataclasses look their module up while defined
        spec.loader.exec_module(module)
    if not (module.DEFAULT_PEER_PYTHON.is_file() and module.DEFAULT_CLEANRL_SRC.is_dir()):
        raise NotImplementedError("CleanRL is not set up: run `make peers-cleanrl`")
    return module


def measure_cleanrl(algo: str, side: str) -> dict[str, float]:
    """`two_budget_rates` for one side of rlbench vs CleanRL, from two whole child-process
    runs per side (spawn to exit: interpreter start-up and imports cancel in the difference)."""
    script = vs_cleanrl()
    peer = script.PEERS[algo]
    short, long = CLEANRL_BUDGETS[algo]

    def seconds(steps: int) -> tuple[float, float]:
        if side == "cleanrl":
            run = script.run_cleanrl(peer, steps, script.DEFAULT_PEER_PYTHON,
                                     script.DEFAULT_CLEANRL_SRC)
        else:
            run = script.run_rlbench(algo, peer.rlbench, steps, eval_episodes=1)
        return run["wall_s"], run["cpu_s"]

    return two_budget_rates(short, long, seconds(short), seconds(long))


class PeersCleanRL:
    """rlbench vs CleanRL's own scripts at CleanRL's settings, steady env steps/s ratios
    (rlbench ÷ CleanRL, higher is better), from one `setup_cache` run."""

    params = [list(ALGOS)]
    param_names = ["algo"]
    timeout = 1800

    def setup_cache(self) -> Results:
        return {f"{algo}/{side}": result_or_skip_reason(measure_cleanrl, algo, side)
                for algo in ALGOS for side in ("rlbench", "cleanrl")}

    setup_cache.timeout = 3600  # type: ignore[attr-defined]

    def setup(self, results: Results, algo: str) -> None:
        skip_if_missing(results[f"{algo}/rlbench"], results[f"{algo}/cleanrl"])

    def _ratio(self, results: Results, algo: str, key: str) -> float:
        return results[f"{algo}/rlbench"][key] / results[f"{algo}/cleanrl"][key]

    def track_speedup(self, results: Results, algo: str) -> float:
        """Steady rlbench steps/s ÷ steady CleanRL steps/s, wall."""
        return self._ratio(results, algo, "steady")

    track_speedup.unit = "x (rlbench/cleanrl)"  # type: ignore[attr-defined]

    def track_speedup_cpu(self, results: Results, algo: str) -> float:
        """The same in steps per CPU second (CleanRL's torch uses every core)."""
        return self._ratio(results, algo, "steady_cpu")

    track_speedup_cpu.unit = "x (rlbench/cleanrl)"  # type: ignore[attr-defined]

    def track_time_vs_peer(self, results: Results, algo: str) -> float:
        """rlbench's steady time per env step ÷ CleanRL's (lower is better: the gate)."""
        return 1.0 / self._ratio(results, algo, "steady")

    track_time_vs_peer.unit = "x (rlbench time / cleanrl time)"  # type: ignore[attr-defined]

    def track_cleanrl_sps(self, results: Results, algo: str) -> float:
        return results[f"{algo}/cleanrl"]["steady"]

    track_cleanrl_sps.unit = "env steps/s"  # type: ignore[attr-defined]

    def track_rlbench_sps(self, results: Results, algo: str) -> float:
        return results[f"{algo}/rlbench"]["steady"]

    track_rlbench_sps.unit = "env steps/s"  # type: ignore[attr-defined]
