"""DQN/IQN with N actor processes and one learner process (``--actors N``).

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
* **Failures.** Any child exception reaches the parent as `ChildProcessFailed` with the
  child's traceback (`multiproc.ProcessGroup`); Ctrl-C / SIGTERM / errors stop every child;
  the shared segments are unlinked on every exit path, and as soon as every child has
  attached (the memory lives on until the last process exits), so even SIGKILL leaks none.
* Actors act on the CPU (one observation at a time); the learner uses `config.device`.
  Runs are seeded but, being asynchronous, not bit-for-bit reproducible.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
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
from rlbench.trainers.multiproc import ProcessGroup, WeightChannel, Worker
from rlbench.trainers.q_learning import (
    PendingTransitions,
    algo_of,
    evaluate_agent,
    make_agent,
    make_epsilon_schedule,
    resolve_device,
    updates_due,
)

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

    claimed: Any  # env steps claimed by actors (increments under its lock): stops them at total_steps
    learner_updates: Any  # the learner's update count (single writer, lock-free reads)
    learner_finished: Any  # Event: the final weights and epsilon are published


# ---------------------------------------------------------------------------------------
# Learner
# ---------------------------------------------------------------------------------------
class Learner:
    """Samples the shared buffer, updates the agent on schedule, publishes weights."""

    def __init__(self, config: QLearningConfig, buffer: SharedReplayBuffer,
                 channel: WeightChannel, counters: Counters, worker: Worker) -> None:
        self.config, self.buffer, self.channel = config, buffer, channel
        self.counters, self.worker = counters, worker
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.agent = make_agent(config, make(config.env_id), resolve_device(config.device))
        self.epsilon = make_epsilon_schedule(config)
        self.total_updates = updates_due(config.total_steps, config)
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
        c = self.config
        self.publish(0)
        info: dict[str, float] = {}
        age_sum, age_n, wait_s, next_log = 0.0, 0, 0.0, c.log_interval
        t0 = time.perf_counter()
        backoff = Backoff()
        while self.agent.updates < self.total_updates:
            if self.worker.should_stop():
                break
            steps = self.buffer.total_writes
            if self.agent.updates >= updates_due(steps, c):  # ahead of schedule: wait for actors
                if steps - self.published_at >= self.publish_every_steps:
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
        if not self.worker.should_stop():
            self.publish(self.buffer.total_writes)  # the final weights and epsilon
            self.counters.learner_finished.set()
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
                  channel: WeightChannel, counters: Counters) -> dict[str, Any]:
    try:
        return Learner(config, buffer, channel, counters, worker).run()
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
                 channel: WeightChannel, counters: Counters, worker: Worker) -> None:
        self.config, self.index, self.buffer, self.channel = config, index, buffer, channel
        self.counters, self.worker = counters, worker
        seed = config.seed + (index + 1) * ACTOR_SEED_STRIDE
        torch.manual_seed(seed)  # IQN samples quantile fractions when acting
        self.rng = np.random.default_rng(seed)
        self.env = make(config.env_id, seed=seed)
        self.agent = make_agent(config, self.env, torch.device("cpu"))
        self._incoming = _numpy_weights(self.agent)  # reused receive buffers
        self.seq, self.version, self.epsilon = -1, -1, config.epsilon_start
        faults = active_faults(config.faults)
        # Faults are picked here, once; the clean methods carry no flag checks.
        # FAULT stale-actor-weights: only the first publication is ever loaded.
        self.refresh = self._load_first_only if "stale-actor-weights" in faults else self._load_latest
        # FAULT epsilon-not-published: the weights arrive, their epsilon is dropped.
        self._take_epsilon = self._keep_epsilon if "epsilon-not-published" in faults else self._set_epsilon
        self.total_updates = updates_due(config.total_steps, config)
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
        """Claim the next block of up to `self.block` global env steps: (first step, count);
        count 0 when training is over. Waits while that block would put the learner too far
        behind its schedule; the actor holds no unwritten steps here (`run` writes every block
        as soon as it has been stepped), so the learner is never waiting on this actor."""
        claimed, c = self.counters.claimed, self.config
        while not self.worker.should_stop():
            # An unlocked read is enough to decide whether to wait; the claim itself is locked.
            seen = claimed.get_obj().value
            ahead = updates_due(min(seen + self.block, c.total_steps), c) - (
                self.counters.learner_updates.value)
            if ahead > self.max_ahead:
                self.backoff.wait()
                continue
            self.backoff.reset()
            with claimed.get_lock():
                first = claimed.value + 1
                n = min(self.block, c.total_steps - claimed.value)
                if n <= 0:
                    return first, 0
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
        # Training is over: hold the learner's final publication, as a live actor would.
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
                counters: Counters) -> dict[str, Any]:
    try:
        actor = Actor(config, index, buffer, channel, counters, worker)
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
def train(config: QLearningConfig, out_dir: str | Path | None = None, progress: bool = True
          ) -> dict[str, Any]:
    """Actor/learner training of `config` with `config.actors` actors; returns the summary
    (also written to `out_dir/summary.json`). Raises `ChildProcessFailed` if a child fails."""
    if config.actors < 1:
        raise ValueError(f"actor/learner training needs actors >= 1, got {config.actors}")
    # Resolve RLBENCH_FAULTS here so every child runs with exactly the parent's faults.
    config = config.replace(faults=tuple(sorted(active_faults(config.faults))))
    algo = algo_of(config)
    torch.manual_seed(config.seed)
    if torch.get_num_threads() != config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    env = make(config.env_id)
    eval_agent = make_agent(config, env, torch.device("cpu"))  # evaluates published weights
    obs_shape = eval_agent.obs_shape
    env.close()

    recorder = RunRecorder(out_dir, algo, "torch", config)
    bar = Progress(config.total_steps, f"{algo} x{config.actors}", enabled=progress)
    episodes = EpisodeStats(window=20)
    try:
        with ExitStack() as stack:
            group = stack.enter_context(ProcessGroup(torch_threads=config.torch_threads))
            # Entered after the group, so they are unlinked after every child has stopped.
            buffer = SharedReplayBuffer(config.buffer_size, obs_shape, faults=config.faults,
                                        ctx=group.ctx)
            stack.callback(buffer.close)
            channel = WeightChannel(_numpy_weights(eval_agent), ctx=group.ctx)
            stack.callback(channel.close)
            stack.callback(group.stop)
            counters = Counters(group.ctx.Value("q", 0), group.ctx.Value("q", 0, lock=False),
                                group.ctx.Event())

            group.spawn("learner", _learner_main, config, buffer, channel, counters)
            for i in range(config.actors):
                group.spawn(f"actor-{i}", _actor_main, config, i, buffer, channel, counters)

            next_eval = config.eval_interval
            first_step_at = None  # start-up of the children excluded from `sps_stepping`
            unlinked = False
            while group.running:
                messages = group.poll(POLL_S)
                if not unlinked and group.all_started:
                    # Everyone is attached: drop the names now, so that not even a SIGKILL
                    # of the whole process group can leave a segment in /dev/shm.
                    buffer.unlink()
                    channel.unlink()
                    unlinked = True
                for _, kind, payload in messages:
                    if kind == "episode":
                        episodes.finished(payload["ret"])
                        recorder.log(payload.pop("step"), kind="episode", **payload)
                    elif kind == "train":
                        recorder.log(payload.pop("step"), kind="train", **payload)
                steps = buffer.total_writes
                if first_step_at is None and steps:
                    first_step_at = time.perf_counter()
                if steps >= next_eval and steps < config.total_steps:
                    next_eval += config.eval_interval
                    recorder.record_eval(steps, _evaluate_published(eval_agent, channel, config))
                bar.update(steps, eps=channel.epsilon,
                           ret=episodes.recent_mean(),
                           eval=recorder.eval_history[-1]["return_mean"]
                           if recorder.eval_history else float("nan"))
            stepping_s = time.perf_counter() - (first_step_at or time.perf_counter())
            recorder.record_eval(config.total_steps,
                                 _evaluate_published(eval_agent, channel, config))
            buffer_stats = buffer.stats()
    except BaseException:
        recorder.close()
        raise
    bar.update(config.total_steps, force=True, ret=episodes.recent_mean(),
               eval=recorder.eval_history[-1]["return_mean"])
    learner = group.results["learner"]
    actors = [group.results[f"actor-{i}"] for i in range(config.actors)]
    act_steps = sum(a["steps"] for a in actors)
    return recorder.finish(
        config.total_steps,
        updates=learner["updates"],
        episodes=episodes.episodes,
        device=str(resolve_device(config.device)),
        buffer=buffer_stats,
        final_epsilon=learner["epsilon"],
        sps_stepping=config.total_steps / stepping_s if stepping_s > 0 else None,
        actors=config.actors,
        publish_interval=config.publish_interval,
        policy_lag_mean=sum(a["lag_sum"] for a in actors) / max(act_steps, 1),
        policy_lag_max=max(a["lag_max"] for a in actors),
        policy_lag_at_write_mean=sum(a["write_lag_sum"] for a in actors) / max(act_steps, 1),
        policy_lag_at_write_max=max(a["write_lag_max"] for a in actors),
        learner=learner,
        actor_results=actors,
    )


def _evaluate_published(agent: Any, channel: WeightChannel, config: QLearningConfig):
    """Evaluate the latest published weights (what the actors act with) greedily."""
    arrays, _, _, _ = channel.read()
    agent.load_weights({k: torch.from_numpy(v) for k, v in arrays.items()})
    return evaluate_agent(agent, config)
