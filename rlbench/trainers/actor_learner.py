"""DQN/IQN with N actor processes and one learner process (``--actors N``), resumable.

    actor 0..N-1 ──transitions (+ policy version)──▶ SharedReplayBuffer ──batches──▶ learner
        ▲                                                                              │
        └────────────── WeightChannel: weights, version, epsilon ◀──── every publish_interval updates

* **Same algorithm as the single-process trainer.** The learner drives the very same
  `QAgent.update` (train mode, dtype-checked batch on its device, clipping, LR schedule,
  target updates), the same update schedule (`gradient_steps` every `train_frequency` env
  steps from `learning_starts` on, counted over all actors) and the same epsilon schedule.
  The ratio is enforced in both directions: the learner waits for env steps, and an actor
  waits before claiming its next block of steps (`ACTOR_BLOCK`) while that block would put
  the learner more than `publish_interval` updates behind its schedule, so the
  updates-per-step ratio equals the single-process one at every moment (± one publication).
* **Epsilon lives in one place.** The learner evaluates the schedule at the global step
  count and publishes it with the weights; actors act with the epsilon that came with the
  weights they hold. While the learner waits (warm-up) it republishes the same weights with
  the current epsilon every time that many env steps have passed.
* **Policy version and lag.** A publication's version is the learner's update count. Each
  transition stores the version that chose its action. An actor reads the learner's live
  update count, then refreshes its weights, then acts: `lag = updates - version` is the
  number of updates its policy is missing at that moment, and is at most `publish_interval`
  when refreshing works (no slack: the count is read *before* the refresh). The lag when the
  transition lands in the buffer ("at write", at the end of its block) is reported too; it
  adds the updates made while the actor stepped the env, which depends on scheduling and has
  no hard bound.
* **Resumable (`ActorLearnerTrainer`, the `rlbench.api` protocol).** The processes live
  across `advance` calls. The parent holds a shared step *allowance*; `advance(n)` raises it
  by n. Actors claim blocks only up to the allowance (a block that would cross it is cut
  short, so the buffer's writes never exceed the allowance: overshoot 0) and wait there;
  the learner updates up to `updates_due(allowance)`, publishes the weights and epsilon at
  the allowance, marks it *completed* and waits. `advance` returns once the allowance is
  completed, so between calls nothing runs and `policy()`/`values()`/`evaluate()` see the
  weights at exactly `env_steps`. `train` is that trainer advanced in `eval_interval`
  slices with an evaluation after each, then `finish()` (children return their statistics).
* **Failures.** Any child exception reaches the parent as `ChildProcessFailed` with the
  child's traceback (`multiproc.ProcessGroup`); Ctrl-C / SIGTERM / errors stop every child;
  the shared segments are unlinked on every exit path (`close()`, an exception or Ctrl-C in
  `advance`, garbage collection, interpreter exit), and as soon as every child has attached
  (the memory lives on until the last process exits), so even SIGKILL leaks none. A run
  that stops moving (a deadlocked or stuck child: no claim, write, update, completion or
  child result for `config.stall_timeout_s`) raises `RunStalled` naming where each counter
  stopped, instead of waiting forever.
* Actors act on the CPU (one observation at a time); the learner uses `config.device`.
  Runs are seeded but, being asynchronous, not bit-for-bit reproducible.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import time
import weakref
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlbench.buffers.shared import SharedReplayBuffer
from rlbench.config import QLearningConfig
from rlbench.envs import make
from rlbench.faults import active_faults
from rlbench.runs import EpisodeStats, Progress, RunRecorder
from rlbench.schedules import next_multiple
from rlbench.trainers.multiproc import ChildProcessFailed, ProcessGroup, WeightChannel, Worker
from rlbench.trainers.q_learning import (
    PendingTransitions,
    QAgent,
    algo_of,
    evaluate_agent,
    make_agent,
    make_epsilon_schedule,
    resolve_device,
    updates_due,
)
from rlbench.trainers.q_learning.loop import q_learning_metrics
from rlbench.types import EvalResult

ACTOR_SEED_STRIDE = 1_000  # actor i's env and RNG seeds: seed + (i + 1) * stride
# A waiting process sleeps instead of spinning, backing off from 50 us to 2 ms: on a small
# box every wake-up of a waiting actor is CPU taken from the learner that it waits for.
MIN_IDLE_SLEEP_S, MAX_IDLE_SLEEP_S = 5e-5, 2e-3
POLL_S = 0.05  # parent's message poll period
# Env steps an actor claims, steps, and then writes to the shared buffer in one lock hold.
# Claiming and writing step by step cost ~7 lock round trips and a validation per step,
# most of an actor's time on a 2-core box (the other actor holds the locks). A block is
# short next to the learner's schedule, whose ratio guarantee is kept per block (see
# `Actor._claim_block`); policy versions and lag are still per step.
ACTOR_BLOCK = 16


def weights_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 over the arrays' names and bytes: equal digests ⇔ identical weights."""
    h = hashlib.sha256()
    for key, value in arrays.items():
        h.update(key.encode())
        h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()


def _numpy_weights(agent: Any) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in agent.get_weights().items()}


class RunStalled(RuntimeError):
    """An actor/learner run made no progress for `stall_timeout_s` seconds while the parent
    waited on it: a child is deadlocked or stuck. The message names the counters' values."""


class Backoff:
    """Sleeps that double while waiting goes on; `reset()` once there is work again."""

    def __init__(self) -> None:
        self.sleep_s = MIN_IDLE_SLEEP_S

    def wait(self) -> float:
        """Sleep once; return the seconds slept."""
        t = time.perf_counter()
        time.sleep(self.sleep_s)
        self.sleep_s = min(2 * self.sleep_s, MAX_IDLE_SLEEP_S)
        return time.perf_counter() - t

    def reset(self) -> None:
        self.sleep_s = MIN_IDLE_SLEEP_S


@dataclass
class Counters:
    """Process-shared counters (multiprocessing Values, passed to children at spawn)."""

    claimed: Any  # env steps claimed by actors (increments under its lock), <= allowance
    learner_updates: Any  # the learner's update count (single writer, lock-free reads)
    learner_finished: Any  # Event: the run is over, its final weights and epsilon are published
    allowance: Any = None  # env steps actors may claim, raised by the parent (lock-free);
    # None (an actor run in-process, without a parent): the fixed budget config.total_steps
    completed: Any = None  # by the learner: the first `completed` steps are written, their
    # updates made and the resulting weights published (single writer, lock-free reads)

    @classmethod
    def create(cls, ctx: Any) -> Counters:
        """Fresh counters from the multiprocessing context `ctx` (allowance 0)."""
        return cls(ctx.Value("q", 0), ctx.Value("q", 0, lock=False), ctx.Event(),
                   ctx.Value("q", 0, lock=False), ctx.Value("q", 0, lock=False))


# ---------------------------------------------------------------------------------------
# Learner
# ---------------------------------------------------------------------------------------
class Learner:
    """Samples the shared buffer, updates the agent on schedule, publishes weights; marks
    each allowance completed and waits for the next, until the run is finished."""

    def __init__(self, config: QLearningConfig, buffer: SharedReplayBuffer,
                 channel: WeightChannel, counters: Counters, worker: Worker,
                 agent_cls: type[QAgent] | None = None) -> None:
        self.config, self.buffer, self.channel = config, buffer, channel
        self.counters, self.worker = counters, worker
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        env = make(config.env_id)
        try:
            self.agent = make_agent(config, env, resolve_device(config.device), agent_cls)
        finally:
            env.close()
        # Made now, in set-up, not at the first update: torch.optim's first optimizer imports
        # torch._dynamo (~1.5 s), which would stall the run while actors wait on the learner.
        _ = self.agent.optimizer
        self.epsilon = make_epsilon_schedule(config)
        # Env steps between two publications at the scheduled ratio; also the period of the
        # epsilon-only republication while the learner waits.
        self.publish_every_steps = max(
            1, config.publish_interval * config.train_frequency // config.gradient_steps)
        self.published_version, self.published_epsilon, self.published_at = -1, float("nan"), 0
        self.digest = ""
        # FAULT step-counter-missing: the counter is never initialised, so the first
        # `self.training_step += 1` raises and the learner process dies.
        if "step-counter-missing" not in active_faults(config.faults):
            self.training_step = 0

    def publish(self, steps: int) -> None:
        """Weights + version (= updates so far) + epsilon at `steps`, in one publication."""
        arrays = _numpy_weights(self.agent)
        epsilon = self.epsilon(steps)
        self.channel.publish(arrays, version=self.agent.updates, epsilon=epsilon)
        self.published_version, self.published_epsilon = self.agent.updates, epsilon
        self.published_at, self.digest = steps, weights_digest(arrays)

    def run(self) -> dict[str, Any]:
        c, counters = self.config, self.counters
        self.worker.send("ready")  # set up: the parent's stall watch may start
        self.publish(0)
        info: dict[str, float] = {}
        age_sum, age_n, wait_s, next_log = 0.0, 0, 0.0, c.log_interval
        t0 = time.perf_counter()
        backoff = Backoff()
        while not self.worker.should_stop():
            # The allowance is read before the writes: actors never write past it, so
            # `steps >= allowance` below means every step of that allowance is written.
            allowance = counters.allowance.value
            steps = self.buffer.total_writes
            if self.agent.updates >= updates_due(steps, c):  # caught up: wait for actors
                if steps >= allowance and counters.completed.value < steps:
                    self.publish(steps)  # the weights and epsilon at the allowance
                    counters.completed.value = steps
                    self.worker.send("completed", steps)  # wakes the parent's poll at once
                elif counters.learner_finished.is_set():
                    break  # set by the parent once the final allowance is completed
                elif steps - self.published_at >= self.publish_every_steps:
                    self.publish(steps)  # same weights, current epsilon
                wait_s += backoff.wait()
                continue
            backoff.reset()
            batch, versions = self.buffer.sample_with_versions(c.batch_size, self.rng)
            info = self.agent.update(batch)
            self.training_step += 1
            self.counters.learner_updates.value = self.training_step
            age_sum += float(self.training_step - versions.mean())
            age_n += 1
            if self.training_step % c.publish_interval == 0:
                self.publish(steps)
            if steps >= next_log:
                next_log += c.log_interval
                self.worker.send("train", {"step": steps, "updates": self.training_step,
                                           "epsilon": self.published_epsilon, **info})
        return {
            "updates": self.agent.updates,
            "training_step": self.training_step,
            "version": self.published_version,
            "epsilon": self.published_epsilon,
            "weights_digest": self.digest,
            "replay_age_mean": age_sum / max(age_n, 1),
            "wait_s": wait_s,
            "torch_threads": torch.get_num_threads(),
            "busy_s": time.perf_counter() - t0 - wait_s,
            "last": info,
        }


def _learner_main(worker: Worker, config: QLearningConfig, buffer: SharedReplayBuffer,
                  channel: WeightChannel, counters: Counters,
                  agent_cls: type[QAgent] | None) -> dict[str, Any]:
    try:
        return Learner(config, buffer, channel, counters, worker, agent_cls).run()
    finally:
        buffer.close()
        channel.close()


# ---------------------------------------------------------------------------------------
# Actor
# ---------------------------------------------------------------------------------------
def actor_block(config: QLearningConfig, max_ahead: int) -> int:
    """Steps per claimed block: at most ACTOR_BLOCK, and never worth more than `max_ahead`
    scheduled updates. That bound is what rules out a deadlock: an actor waits only after
    writing out its block, so once the learner has caught up with every written step, the
    next block is within `max_ahead` and some actor may claim it."""
    tf, gs = config.train_frequency, config.gradient_steps
    if tf >= ACTOR_BLOCK:
        return ACTOR_BLOCK  # a block spans at most one update point: gs <= max_ahead updates
    return tf * max(1, min(ACTOR_BLOCK // tf, max_ahead // gs))


class VersionedPending(PendingTransitions):
    """`PendingTransitions` that also keeps the policy version of each transition."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...]) -> None:
        super().__init__(capacity, obs_shape)
        self.version = np.zeros(capacity, np.int64)

    def add(self, obs, action, reward, next_obs, terminated, truncated, version: int = 0) -> None:
        super().add(obs, action, reward, next_obs, terminated, truncated)
        self.version[self.n - 1] = version

    def flush_into(self, buffer: SharedReplayBuffer) -> None:  # type: ignore[override]
        super().flush_into(buffer, version=self.version)


class Actor:
    """Steps one env with the latest published policy; writes versioned transitions."""

    def __init__(self, config: QLearningConfig, index: int, buffer: SharedReplayBuffer,
                 channel: WeightChannel, counters: Counters, worker: Worker,
                 agent_cls: type[QAgent] | None = None) -> None:
        self.config, self.index, self.buffer, self.channel = config, index, buffer, channel
        self.counters, self.worker = counters, worker
        # Without a parent's allowance the budget is fixed: config.total_steps.
        self.allowance = (counters.allowance if counters.allowance is not None
                          else ctypes.c_int64(config.total_steps))
        seed = config.seed + (index + 1) * ACTOR_SEED_STRIDE
        torch.manual_seed(seed)  # IQN samples quantile fractions when acting
        self.rng = np.random.default_rng(seed)
        self.env = make(config.env_id, seed=seed)
        try:
            self.agent = make_agent(config, self.env, torch.device("cpu"), agent_cls)
        except BaseException:
            self.env.close()
            raise
        self._incoming = _numpy_weights(self.agent)  # reused receive buffers
        self.seq, self.version, self.epsilon = -1, -1, config.epsilon_start
        faults = active_faults(config.faults)
        # Faults are picked here, once; the clean methods carry no flag checks.
        # FAULT stale-actor-weights: only the first publication is ever loaded.
        self.refresh = self._load_first_only if "stale-actor-weights" in faults else self._load_latest
        # FAULT epsilon-not-published: the weights arrive, their epsilon is dropped.
        self._take_epsilon = self._keep_epsilon if "epsilon-not-published" in faults else self._set_epsilon
        # Actors pause while the learner is more than this many updates behind schedule.
        self.max_ahead = max(config.publish_interval, config.gradient_steps)
        self.block = actor_block(config, self.max_ahead)
        self.backoff = Backoff()
        self.pending = VersionedPending(self.block, self.agent.obs_shape)
        self.write_lag_sum = self.write_lag_max = 0

    # -- weights -----------------------------------------------------------------------
    def _load_latest(self) -> None:
        if self.channel.seq == self.seq:  # lock-free peek: nothing new
            return
        self.seq, self.version, epsilon = self.channel.read_into(self._incoming)
        self.agent.load_weights({k: torch.from_numpy(v) for k, v in self._incoming.items()})
        self._take_epsilon(epsilon)

    def _load_first_only(self) -> None:
        if self.seq < 0:
            self._load_latest()

    def _set_epsilon(self, epsilon: float) -> None:
        self.epsilon = epsilon

    def _keep_epsilon(self, epsilon: float) -> None:
        pass

    # -- stepping ----------------------------------------------------------------------
    def _claim_block(self) -> tuple[int, int]:
        """Claim the next block of up to `self.block` global env steps, cut short at the
        allowance: (first step, count); count 0 when the run is over. Waits while the
        allowance is used up, and while the block would put the learner too far behind its
        schedule; the actor holds no unwritten steps here (`run` writes every block as soon as
        it has been stepped), so neither the learner nor the parent waits on this actor."""
        claimed, c = self.counters.claimed, self.config
        while not self.worker.should_stop():
            # Unlocked reads are enough to decide whether to wait; the claim itself is locked.
            seen, limit = claimed.get_obj().value, self.allowance.value
            if seen >= limit:  # allowance used up: wait for `advance`, or the end of the run
                if self.counters.learner_finished.is_set():
                    return seen + 1, 0
                self.backoff.wait()
                continue
            # A cut-short block is shorter, so `actor_block`'s bound still rules out deadlock.
            ahead = updates_due(min(seen + self.block, limit), c) - (
                self.counters.learner_updates.value)
            if ahead > self.max_ahead:
                self.backoff.wait()
                continue
            self.backoff.reset()
            with claimed.get_lock():
                first = claimed.value + 1
                n = min(self.block, limit - claimed.value)  # the allowance only grows
                if n > 0:
                    claimed.value += n
                    return first, n
        return 0, 0

    def flush(self) -> None:
        """Write the held transitions with one lock hold; account their lag at write."""
        n = self.pending.n
        if n:
            self.pending.flush_into(self.buffer)
            lag = np.maximum(self.counters.learner_updates.value - self.pending.version[:n], 0)
            self.write_lag_sum += int(lag.sum())
            self.write_lag_max = max(self.write_lag_max, int(lag.max()))

    def run(self) -> dict[str, Any]:
        self.worker.send("ready")  # set up: the parent's stall watch may start
        while self.channel.seq < 0 and not self.worker.should_stop():
            self.backoff.wait()  # the learner publishes its initial weights first
        lag_sum = lag_max = steps = 0
        episodes = EpisodeStats(window=1)  # the parent keeps the recent window
        obs, _ = self.env.reset()
        while True:
            first, n = self._claim_block()
            if n == 0:
                break
            for step in range(first, first + n):
                updates = self.counters.learner_updates.value  # read before refreshing: lag bound
                self.refresh()
                lag = max(0, updates - self.version)
                action = self.agent.act(obs, self.epsilon, self.rng)
                next_obs, reward, terminated, truncated, _ = self.env.step(action)
                self.pending.add(obs, action, reward, next_obs, terminated, truncated,
                                 version=self.version)
                lag_sum, lag_max = lag_sum + lag, max(lag_max, lag)
                steps += 1
                episodes.step(reward)
                obs = next_obs
                if terminated or truncated:
                    ep_return, ep_len = episodes.end()
                    self.worker.send("episode", {"step": step, "ret": ep_return, "length": ep_len,
                                                 "actor": self.index, "epsilon": self.epsilon})
                    obs, _ = self.env.reset()
            self.flush()
        # The run is over: hold the learner's final publication, as a live actor would.
        while not self.counters.learner_finished.is_set() and not self.worker.should_stop():
            self.backoff.wait()
        self.refresh()
        return {
            "steps": steps, "episodes": episodes.episodes,
            "lag_sum": lag_sum, "lag_max": lag_max, "write_lag_sum": self.write_lag_sum,
            "write_lag_max": self.write_lag_max, "version": self.version, "epsilon": self.epsilon,
            "weights_digest": weights_digest(_numpy_weights(self.agent)),
            "torch_threads": torch.get_num_threads(),
        }


def _actor_main(worker: Worker, config: QLearningConfig, index: int,
                buffer: SharedReplayBuffer, channel: WeightChannel,
                counters: Counters, agent_cls: type[QAgent] | None) -> dict[str, Any]:
    try:
        actor = Actor(config, index, buffer, channel, counters, worker, agent_cls)
        try:
            return actor.run()
        finally:
            actor.env.close()
    finally:
        buffer.close()
        channel.close()


# ---------------------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------------------
def pooled_policy_lag(actors: list[dict[str, Any]]) -> dict[str, float]:
    """The run's policy-lag figures from the actors' results: means over every step any
    actor made (at acting and at writing), maxima over all actors."""
    steps = max(sum(a["steps"] for a in actors), 1)
    return {
        "policy_lag_mean": sum(a["lag_sum"] for a in actors) / steps,
        "policy_lag_max": max(a["lag_max"] for a in actors),
        "policy_lag_at_write_mean": sum(a["write_lag_sum"] for a in actors) / steps,
        "policy_lag_at_write_max": max(a["write_lag_max"] for a in actors),
    }


class ActorLearnerTrainer:
    """One actor/learner run, resumable: the `rlbench.api` trainer protocol, with `values`.

    The learner and `config.actors` actors start here and live until `finish()`/`close()`.
    `advance(n)` raises the shared allowance by n and returns once those steps are written,
    their scheduled updates made and the weights published; a child failure raises
    `ChildProcessFailed` (its traceback included), a run that stops moving for
    `config.stall_timeout_s` raises `RunStalled`, and those, Ctrl-C or any other exception
    in `advance` close the trainer. `policy()`, `values()` and `evaluate()` use the
    latest published weights (what the actors act with), loaded into a local CPU agent.
    `close()` stops the children and frees the shared memory; it also runs at garbage
    collection and at interpreter exit if nobody called it.
    """

    reproducible = False
    """Asynchronous: which transitions each update samples depends on process scheduling
    (`rlbench.api.is_reproducible`)."""

    def __init__(self, config: QLearningConfig, out_dir: str | Path | None = None,
                 progress: bool = False, agent_cls: type[QAgent] | None = None) -> None:
        if config.actors < 1:
            raise ValueError(f"actor/learner training needs actors >= 1, got {config.actors}")
        # Resolve RLBENCH_FAULTS here so every child runs with exactly the parent's faults.
        config = config.replace(faults=tuple(sorted(active_faults(config.faults))))
        self.config, self.algo = config, algo_of(config)
        torch.manual_seed(config.seed)
        env = make(config.env_id)
        try:  # the local agent (its CPU torch threads set by QAgent): policy(), values() and
            # evaluation of the published weights
            self.agent = make_agent(config, env, torch.device("cpu"), agent_cls)
        finally:
            env.close()
        self.env_steps = 0
        self.epsilon = make_epsilon_schedule(config)
        self.episodes = EpisodeStats(window=20)
        self.info: dict[str, float] = {}  # the learner's latest train metrics
        self._loaded_seq = -1  # the channel publication loaded into self.agent
        self._unlinked = self._finishing = False
        self._first_step_at: float | None = None  # start-up excluded from `sps_stepping`
        self._completed_at: float | None = None
        self._progress_seen: dict[str, int] = {}  # the stall watch: last state and when it
        self._moved_at = time.monotonic()  # changed (`_check_progress`)
        with ExitStack() as stack:
            self.recorder = RunRecorder(out_dir, self.algo, "torch", config)
            stack.callback(self.recorder.close)
            self.bar = Progress(config.total_steps, f"{self.algo} x{config.actors}",
                                enabled=progress)
            self.group = stack.enter_context(ProcessGroup(torch_threads=config.torch_threads))
            # Registered after the group, so they are unlinked after every child has stopped.
            self.buffer = SharedReplayBuffer(config.buffer_size, self.agent.obs_shape,
                                             faults=config.faults, ctx=self.group.ctx)
            stack.callback(self.buffer.close)
            self.channel = WeightChannel(_numpy_weights(self.agent), ctx=self.group.ctx)
            stack.callback(self.channel.close)
            stack.callback(self.group.stop)
            self.counters = Counters.create(self.group.ctx)
            shared = (self.buffer, self.channel, self.counters, agent_cls)
            self.group.spawn("learner", _learner_main, config, *shared)
            for i in range(config.actors):
                self.group.spawn(f"actor-{i}", _actor_main, config, i, *shared)
            # The finalizer holds the resources, never `self`: it runs on close(), when the
            # trainer is garbage collected, or at interpreter exit, whichever comes first.
            self._release = weakref.finalize(self, stack.pop_all().close)

    # -- the rlbench.api protocol ----------------------------------------------------------
    def advance(self, steps: int) -> None:
        """Train `steps` more env steps (summed over actors); return once they are written,
        their updates made and the weights published."""
        if steps < 0:
            raise ValueError(f"advance: steps must be >= 0, got {steps}")
        self._check_open("advance")
        target = self.env_steps + steps
        try:  # (the raised allowance is a change the stall watch sees: it restarts its clock)
            self.counters.allowance.value = target
            while self.counters.completed.value < target:
                self._pump()
                if self.group.results:  # a child that returns by itself never completes it
                    name = next(iter(self.group.results))
                    raise ChildProcessFailed(name, "returned before the run was finished")
        except BaseException:
            # Keep the last publication before the channel goes: policy()/values() after a
            # failure must show the weights the learner had reached, not the initial ones.
            with contextlib.suppress(Exception):
                self._published_agent()
            self.close()
            raise
        self.env_steps = target
        self._completed_at = time.perf_counter()

    def policy(self) -> Callable[[np.ndarray], int]:
        """The greedy policy of the latest published weights (a local copy, refreshed by
        every `policy()`, `values()` and `evaluate()`)."""
        return self._published_agent().greedy_action

    def values(self, obs: np.ndarray) -> np.ndarray:
        """Q(obs, a) for every action under the latest published weights, shape [n_actions]."""
        return self._published_agent().q_values(np.asarray(obs)[None])[0]

    def metrics(self) -> dict[str, float]:
        # epsilon(env_steps) is what the learner published at this allowance.
        return q_learning_metrics(self.info, self.counters.learner_updates.value, self.episodes,
                                  self.epsilon(self.env_steps), self.recorder)

    def close(self) -> None:
        """Stop the children and free the shared memory. Idempotent."""
        self._release()

    # -- the full run ----------------------------------------------------------------------
    def evaluate(self) -> EvalResult:
        """Evaluate the latest published weights greedily; record it at `env_steps`."""
        result = evaluate_agent(self._published_agent(), self.config)
        self.recorder.record_eval(self.env_steps, result)
        return result

    def finish(self) -> dict[str, Any]:
        """End the run: the children return their statistics, the trainer closes, and the
        run record is written; returns the summary."""
        self._check_open("finish")
        self._published_agent()  # policy() and values() keep working after the close
        self._finishing = True
        try:  # (the finish request is a change the stall watch sees: it restarts its clock)
            self.counters.learner_finished.set()  # the allowance is completed: final weights
            while self.group.running:
                self._pump()
            buffer_stats = self.buffer.stats()
        finally:
            self.close()
        c, steps, learner = self.config, self.env_steps, self.group.results["learner"]
        actors = [self.group.results[f"actor-{i}"] for i in range(c.actors)]
        stepping_s = ((self._completed_at or 0.0) - self._first_step_at
                      if self._first_step_at is not None else 0.0)
        self.bar.update(steps, force=True, ret=self.episodes.recent_mean(),
                        eval=self._last_eval())
        return self.recorder.finish(
            steps,
            updates=learner["updates"],
            episodes=self.episodes.episodes,
            device=str(resolve_device(c.device)),
            buffer=buffer_stats,
            final_epsilon=learner["epsilon"],
            sps_stepping=steps / stepping_s if stepping_s > 0 else None,
            actors=c.actors,
            publish_interval=c.publish_interval,
            **pooled_policy_lag(actors),
            learner=learner,
            actor_results=actors,
        )

    # -- internals -------------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self._finishing:  # checked first: after finish() the trainer is closed too
            raise RuntimeError(f"{what}: the actor/learner run was finished (finish() called)")
        if not self._release.alive:
            raise RuntimeError(f"{what}: the actor/learner trainer is closed")

    def _published_agent(self) -> QAgent:
        """The local agent, holding the latest publication while the trainer is open."""
        if self._release.alive and self.channel.seq != self._loaded_seq:
            arrays, self._loaded_seq, _, _ = self.channel.read()
            self.agent.load_weights({k: torch.from_numpy(v) for k, v in arrays.items()})
        return self.agent

    def _last_eval(self) -> float:
        history = self.recorder.eval_history
        return history[-1]["return_mean"] if history else float("nan")

    def _progress(self) -> dict[str, int]:
        """Every counter that moves while a run makes progress, by name, and the parent's two
        requests (a raised allowance, finishing), which restart the clock after an idle
        spell between calls. Not publications: each one follows a write, an update or a
        completion, and a learner republishing the same weights in a loop is stuck."""
        return {"allowance": self.counters.allowance.value,
                "finish requested": int(self.counters.learner_finished.is_set()),
                "claimed": self.counters.claimed.value,
                "written": self.buffer.total_writes,
                "learner updates": self.counters.learner_updates.value,
                "completed": self.counters.completed.value,
                "children returned": len(self.group.results)}

    def _check_progress(self) -> None:
        """Raise `RunStalled` once no counter has moved for `stall_timeout_s`. Armed only
        once every child is set up and running: start-up (importing torch, building the env
        and networks) moves no counter and takes seconds on a busy box."""
        now, state = time.monotonic(), self._progress()
        if state != self._progress_seen or not self.group.all_ready:
            self._progress_seen, self._moved_at = state, now
            return
        limit = self.config.stall_timeout_s
        if limit and now - self._moved_at > limit:
            counts = ", ".join(f"{k} {v}" for k, v in state.items())
            due = updates_due(state["written"], self.config)
            raise RunStalled(
                f"the actor/learner run made no progress for {now - self._moved_at:.0f} s "
                f"(stall_timeout_s={limit:g}): {counts} (updates due at the written steps: "
                f"{due}); still running: {', '.join(self.group.running) or 'none'}. A child "
                "is deadlocked or stuck; stall_timeout_s=0 waits forever")

    def _pump(self) -> None:
        """Wait up to POLL_S for the children's messages and record them (raises
        `ChildProcessFailed` for a failed child, `RunStalled` for a run that stopped moving);
        unlink the segments once all attached."""
        messages = self.group.poll(POLL_S)
        if not self._unlinked and self.group.all_started:
            # Everyone is attached: drop the names now, so that not even a SIGKILL of the
            # whole process group can leave a segment in /dev/shm.
            self.buffer.unlink()
            self.channel.unlink()
            self._unlinked = True
        for _, kind, payload in messages:
            if kind == "episode":
                self.episodes.finished(payload["ret"])
                self.recorder.log(payload.pop("step"), kind="episode", **payload)
            elif kind == "train":
                self.recorder.log(payload.pop("step"), kind="train", **payload)
                self.info = payload
        steps = self.buffer.total_writes
        if self._first_step_at is None and steps:
            self._first_step_at = time.perf_counter()
        self.bar.update(steps, eps=self.channel.epsilon, ret=self.episodes.recent_mean(),
                        eval=self._last_eval())
        self._check_progress()


def train(config: QLearningConfig, out_dir: str | Path | None = None, progress: bool = True,
          agent_cls: type[QAgent] | None = None) -> dict[str, Any]:
    """Actor/learner training of `config` with `config.actors` actors: the trainer advanced
    in `eval_interval` slices, evaluated after each and at `total_steps` (the children wait
    while it evaluates, so an evaluation sees the weights at exactly its step). Returns the
    summary (also written to `out_dir/summary.json`); raises `ChildProcessFailed` if a child
    fails."""
    trainer = ActorLearnerTrainer(config, out_dir, progress, agent_cls)
    try:
        total, interval = config.total_steps, config.eval_interval
        while trainer.env_steps < total:
            next_eval = next_multiple(trainer.env_steps, interval)
            trainer.advance(min(total, next_eval) - trainer.env_steps)
            trainer.evaluate()
        return trainer.finish()
    finally:
        trainer.close()
