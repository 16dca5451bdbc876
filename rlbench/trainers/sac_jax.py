"""Soft Actor-Critic in JAX (Flax NNX + optax): the reference continuous-control trainer.

The loop, CleanRL-style, with the JAX parts where they pay:

* the environment steps in Python (dm_control is not JAX);
* acting is one jitted call on the current actor's split state (graphdef pre-split);
* transitions are staged on the host and, once `chunk_updates` (K) updates are due, one
  jitted call writes them into the device-resident `JaxReplayBuffer` and runs a `lax.scan`
  of K gradient updates, each on a batch sampled inside JAX;
* the networks are split once (`nnx.split`), merged inside the jitted function, and the
  scan's final state is written back with `nnx.update` — acting and evaluation then read
  the actor from the modules, so they always see the latest parameters.

K = 1 is the classic one-update-per-step loop, exactly. Twin Q, Polyak targets, learned
temperature (target entropy −|A|), tanh-Gaussian actor. Reward scale is explicit and used
once, in the TD target. Evaluation goes through `rlbench.evaluation.evaluate` (raw
returns; time limits complete episodes).

Faults switchable here (decided in `SAC.__init__`, zero cost when off):
stale-eval-actor, reward-scale-mismatch, sample-before-warmup (and the buffer's
sample-unfilled-slots, buffer-drops-writes).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from rlbench.api import TrainerSpec
from rlbench.buffers.jax_buffer import BufferState, JaxReplayBuffer
from rlbench.config import SACConfig
from rlbench.envs import make
from rlbench.evaluation import EVAL_SEED_OFFSET, evaluate
from rlbench.faults import active_faults
from rlbench.runs import EpisodeStats, Progress, RunRecorder
from rlbench.schedules import next_multiple
from rlbench.schedules import ratio_updates_due as updates_due
from rlbench.trainers import TRAINERS
from rlbench.trainers.sac_nets import Actor, Temperature, TwinQ, polyak, td_target, temperature_loss
from rlbench.types import Batch, Policy

Config = SACConfig


class SACModel(nnx.Module):
    """Every network of one SAC agent."""

    def __init__(self, obs_dim: int, action_dim: int, config: SACConfig, rngs: nnx.Rngs) -> None:
        self.actor = Actor(obs_dim, action_dim, config.hidden_sizes, rngs)
        self.critic = TwinQ(obs_dim, action_dim, config.hidden_sizes, rngs)
        self.target_critic = nnx.clone(self.critic)  # starts equal to the online critics
        self.temperature = Temperature(config.init_alpha)


@cache
def adam(learning_rate: float) -> optax.GradientTransformation:
    """One optax Adam per learning rate, shared by every run in the process.

    The transformation is a static part of the optimizer's graph definition, and optax makes
    new closures on every call: two runs that each called `optax.adam` would never have equal
    graph definitions, so each would compile its own update chunk (~7 s on 2 CPU cores).
    Shared, equal configurations share one compiled update.
    """
    return optax.adam(learning_rate)


class SACOptimizers(nnx.Module):
    """One Adam per learned part (they have different learning rates)."""

    def __init__(self, model: SACModel, config: SACConfig) -> None:
        self.actor = nnx.Optimizer(model.actor, adam(config.policy_lr), wrt=nnx.Param)
        self.critic = nnx.Optimizer(model.critic, adam(config.q_lr), wrt=nnx.Param)
        self.temperature = nnx.Optimizer(model.temperature, adam(config.alpha_lr), wrt=nnx.Param)


def resolve_device(name: str) -> jax.Device:
    """cpu | cuda | auto → the JAX device SAC runs on (auto: the first GPU when JAX sees one).
    Asking for cuda where JAX sees no GPU is an error, not a silent CPU run."""
    if name == "cpu":
        return jax.devices("cpu")[0]
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:  # no GPU backend in this jaxlib, or no device
        gpus = []
    if gpus:
        return gpus[0]
    if name == "cuda":
        raise ValueError("device=cuda, but JAX sees no GPU (install the CUDA build: "
                         "pip install 'rlbench[jax-cuda]', and check CUDA_VISIBLE_DEVICES)")
    return jax.devices("cpu")[0]


def _updates_due_from_first_step(transitions: int, learning_starts: int, utd_ratio: float) -> int:
    # FAULT sample-before-warmup: learning_starts is ignored, updates start at step 1.
    return math.floor(utd_ratio * transitions)


def _scale_reward_again(batch: Batch) -> Batch:
    # FAULT reward-scale-mismatch: a hidden second scaling (the seed's REWARD_SCALE = 0.1)
    # on top of the configured reward_scale.
    return batch._replace(reward=batch.reward * 0.1)


def _unchanged(batch: Batch) -> Batch:
    return batch


def _drop_write_back(node: Any, state: Any) -> None:
    # FAULT stale-eval-actor: the scan's final state is never written back into the
    # modules, so acting and evaluation keep using the actor from before the scan.
    return None


@dataclass(frozen=True)
class SACLearner:
    """The update maths of one SAC configuration: static (hashable) and pure.

    Everything here is fixed per run — the graph definition, the buffer layout, the
    hyperparameters, and the fault-chosen `prepare_batch` — so it is a static argument of
    the jitted functions. Two runs with equal learners share one compiled update.
    """

    graphdef: nnx.GraphDef  # of (SACModel, SACOptimizers)
    buffer: JaxReplayBuffer
    batch_size: int
    chunk_updates: int
    gamma: float
    tau: float
    reward_scale: float
    target_entropy: float
    autotune: bool
    prepare_batch: Callable[[Batch], Batch] = _unchanged

    def critic_target(self, model: SACModel, batch: Batch, key: jax.Array) -> jax.Array:
        """The soft TD target of `batch` [B]: the only place the reward is scaled."""
        batch = self.prepare_batch(batch)
        next_action, next_log_prob = model.actor.sample(batch.next_obs, key)
        next_q1, next_q2 = model.target_critic(batch.next_obs, next_action)
        return td_target(
            batch.reward, batch.terminated, jnp.minimum(next_q1, next_q2), next_log_prob,
            model.temperature(), self.gamma, self.reward_scale,
        )

    def update_step(
        self, model: SACModel, opt: SACOptimizers, batch: Batch, key: jax.Array
    ) -> dict[str, jax.Array]:
        """Critic, actor, temperature and target updates on one batch (mutates the modules)."""
        target_key, actor_key = jax.random.split(key)
        target = jax.lax.stop_gradient(self.critic_target(model, batch, target_key))

        def critic_loss(critic: TwinQ) -> tuple[jax.Array, jax.Array]:
            q1, q2 = critic(batch.obs, batch.action)
            return jnp.mean((q1 - target) ** 2) + jnp.mean((q2 - target) ** 2), q1

        (q_loss, q1), grads = nnx.value_and_grad(critic_loss, has_aux=True)(model.critic)
        opt.critic.update(model.critic, grads)

        alpha = model.temperature()

        def actor_loss(actor: Actor, critic: TwinQ) -> tuple[jax.Array, jax.Array]:
            action, log_prob = actor.sample(batch.obs, actor_key)
            q1_pi, q2_pi = critic(batch.obs, action)
            return jnp.mean(alpha * log_prob - jnp.minimum(q1_pi, q2_pi)), log_prob

        # Gradients w.r.t. the actor only (argnums=0); the critic is just evaluated.
        (pi_loss, log_prob), grads = nnx.value_and_grad(actor_loss, has_aux=True)(
            model.actor, model.critic
        )
        opt.actor.update(model.actor, grads)

        log_prob = jax.lax.stop_gradient(log_prob)
        if self.autotune:  # a config choice, fixed at trace time
            grads = nnx.grad(
                lambda t: temperature_loss(t.log_alpha[...], log_prob, self.target_entropy)
            )(model.temperature)
            opt.temperature.update(model.temperature, grads)

        nnx.update(
            model.target_critic,
            polyak(nnx.state(model.target_critic), nnx.state(model.critic), self.tau),
        )
        return {
            "q_loss": q_loss, "pi_loss": pi_loss, "alpha": alpha, "q_mean": jnp.mean(q1),
            "entropy": -jnp.mean(log_prob), "target_mean": jnp.mean(target),
        }


@partial(jax.jit, static_argnums=0, donate_argnums=2)
def update_chunk(
    learner: SACLearner, state: nnx.State, buffer_state: BufferState, staged: Batch,
    n_staged: jax.Array, first_update: jax.Array, key: jax.Array,
) -> tuple[nnx.State, BufferState, dict[str, jax.Array]]:
    """Write the staged rows into the buffer, then K = chunk_updates updates in one lax.scan.

    `state` is the split (model, optimizers) state; each scan step merges it (free: merging
    happens at trace time), updates the modules, and splits the new state out as the carry.
    The buffer state is donated, so the write happens in place.
    """
    buffer_state = learner.buffer.add_batch(buffer_state, staged, n_staged)

    def one_update(state: nnx.State, update_index: jax.Array):
        model, opt = nnx.merge(learner.graphdef, state)
        # Keys derive from the global update index, so chunking never changes them.
        sample_key, step_key = jax.random.split(jax.random.fold_in(key, update_index))
        batch = learner.buffer.sample(buffer_state, learner.batch_size, sample_key)
        metrics = learner.update_step(model, opt, batch, step_key)
        return nnx.state((model, opt)), metrics

    indices = first_update + jnp.arange(learner.chunk_updates)
    state, metrics = jax.lax.scan(one_update, state, indices)
    return state, buffer_state, jax.tree.map(jnp.mean, metrics)


@partial(jax.jit, static_argnums=0, donate_argnums=1)
def add_only(
    buffer: JaxReplayBuffer, buffer_state: BufferState, staged: Batch, n_staged: jax.Array
) -> BufferState:
    """Write staged rows without updating (warm-up; update-to-data ratios below 1)."""
    return buffer.add_batch(buffer_state, staged, n_staged)


@partial(jax.jit, static_argnums=(0, 1))
def act(
    graphdef: nnx.GraphDef, treedef: Any, leaves: list[jax.Array], obs: jax.Array,
    key: jax.Array, step: jax.Array,
) -> jax.Array:
    """One exploration action [A] for one observation.

    Takes the actor's state as a flat leaf list (cheap to pass: no nnx.State flattening per
    call) and folds the step into the key inside the jit (no extra dispatch). The merge
    happens at trace time only.
    """
    actor = nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))
    action, _ = actor.sample(obs, jax.random.fold_in(key, step))
    return action


@partial(jax.jit, static_argnums=(0, 1))
def greedy(graphdef: nnx.GraphDef, treedef: Any, leaves: list[jax.Array], obs: jax.Array) -> jax.Array:
    """The deterministic action tanh(mean) [A] for one observation."""
    return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves)).greedy(obs)


class SAC:
    """One SAC run: env, networks, optimizers, buffer, and the jitted act/update functions.

    `advance(n)` runs n env steps of the training loop (resumable); `run()` interleaves it
    with evaluations and writes the run record. Tests drive `advance` directly.
    """

    def __init__(self, config: SACConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        # Built under the device, then committed to it (`_commit`): jitted calls follow
        # committed inputs, so acting, updates and evaluation all run there.
        with jax.default_device(self.device):
            self._build(config)
        self._commit()

    def _commit(self) -> None:
        put = partial(jax.device_put, device=self.device)
        self.state, self.buffer_state = put(self.state), put(self.buffer_state)
        self.act_key, self.update_key = put(self.act_key), put(self.update_key)
        nnx.update((self.model, self.optimizers), self.state)
        self.actor_leaves = jax.tree.leaves(nnx.state(self.model.actor))

    def _build(self, config: SACConfig) -> None:
        self.faults = active_faults(config.faults)
        self.env = make(config.env_id, seed=config.seed)
        space = self.env.action_space
        if not isinstance(space, gym.spaces.Box):
            raise ValueError(
                f"SAC needs a continuous (Box) action space; {config.env_id} has {space}. "
                "Use a continuous id such as dmc:cartpole-swingup, Pendulum-v1 or probe:4-continuous."
            )
        if not (np.all(np.isfinite(space.low)) and np.all(np.isfinite(space.high))):
            raise ValueError(f"SAC needs a bounded action space; {config.env_id} has {space}")
        self.action_shape = space.shape
        self._action_low = space.low.astype(np.float64).reshape(-1)
        self._action_span = (space.high.astype(np.float64) - space.low.astype(np.float64)).reshape(-1)
        self.obs_dim = int(np.prod(self.env.observation_space.shape))
        self.action_dim = int(np.prod(space.shape))
        self.target_entropy = (
            -float(self.action_dim) if config.target_entropy is None else config.target_entropy
        )

        # Networks and optimizers, split ONCE: `graphdef` is static, `state` is the pytree
        # the jitted update consumes and returns.
        rngs = nnx.Rngs(config.seed)
        self.model = SACModel(self.obs_dim, self.action_dim, config, rngs)
        self.optimizers = SACOptimizers(self.model, config)
        self.graphdef, self.state = nnx.split((self.model, self.optimizers))
        self.actor_graphdef, actor_state = nnx.split(self.model.actor)
        # What acting reads: the actor module's state as flat leaves, refreshed from the
        # modules after every write-back.
        self.actor_leaves, self._actor_treedef = jax.tree.flatten(actor_state)

        self.buffer = JaxReplayBuffer(
            config.buffer_size, (self.obs_dim,), (self.action_dim,), faults=self.faults
        )
        self.buffer_state: BufferState = self.buffer.init()
        # Staging holds the env steps between two device writes: K / utd_ratio of them.
        rows = max(config.chunk_updates, math.ceil(config.chunk_updates / config.utd_ratio))
        self._staging = Batch(
            np.zeros((rows, self.obs_dim), np.float32), np.zeros((rows, self.action_dim), np.float32),
            np.zeros(rows, np.float32), np.zeros((rows, self.obs_dim), np.float32),
            np.zeros(rows, bool), np.zeros(rows, bool),
        )
        self._staged = 0

        key = jax.random.key(config.seed)
        self.act_key, self.update_key = jax.random.split(key)
        self._np_rng = np.random.default_rng(config.seed)  # warm-up (uniform random) actions

        # Fault decisions, made once. Clean: identity / nnx.update / the real schedule.
        self._write_back = _drop_write_back if "stale-eval-actor" in self.faults else nnx.update
        self._updates_due = (
            _updates_due_from_first_step if "sample-before-warmup" in self.faults else updates_due
        )
        self.learner = SACLearner(
            self.graphdef, self.buffer, config.batch_size, config.chunk_updates, config.gamma,
            config.tau, config.reward_scale, self.target_entropy, config.autotune,
            _scale_reward_again if "reward-scale-mismatch" in self.faults else _unchanged,
        )

        self.env_steps = 0
        self.updates = 0
        self.episode_stats = EpisodeStats(window=10)
        self.last_metrics: dict[str, jax.Array] = {}
        first_obs, _ = self.env.reset(seed=config.seed)
        self._obs = np.asarray(first_obs, np.float32).reshape(-1)

    # -- acting ------------------------------------------------------------------------------
    def _to_env(self, action: np.ndarray) -> np.ndarray:
        """Actor box [-1, 1]^A → the env's [low, high]."""
        return (self._action_low + 0.5 * (action + 1.0) * self._action_span).reshape(self.action_shape)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """An exploration action in [-1, 1]^A from the current actor (random before learning)."""
        if self.env_steps < self.config.learning_starts:
            return self._np_rng.uniform(-1.0, 1.0, self.action_dim).astype(np.float32)
        return np.asarray(
            act(self.actor_graphdef, self._actor_treedef, self.actor_leaves, obs, self.act_key,
                self.env_steps)
        )

    def policy(self) -> Policy:
        """The deterministic evaluation policy tanh(mean), read from the actor module now."""
        leaves = jax.tree.leaves(nnx.state(self.model.actor))
        graphdef, treedef = self.actor_graphdef, self._actor_treedef

        def policy(obs: np.ndarray) -> np.ndarray:
            obs = np.asarray(obs, np.float32).reshape(-1)
            return self._to_env(np.asarray(greedy(graphdef, treedef, leaves, obs)))

        return policy

    def values(self, obs: np.ndarray) -> np.ndarray:
        """min(Q1, Q2)(obs, greedy action), shape [1] (the rlbench.api value report)."""
        leaves = jax.tree.leaves(nnx.state(self.model.actor))
        o = jnp.asarray(np.asarray(obs, np.float32).reshape(1, -1))
        a = greedy(self.actor_graphdef, self._actor_treedef, leaves, o[0])
        q1, q2 = self.model.critic(o, jnp.reshape(a, (1, -1)))
        return np.asarray(jnp.minimum(q1, q2)).reshape(1)

    # -- the loop ------------------------------------------------------------------------------
    def advance(self, steps: int) -> None:
        """Run `steps` env steps: act, step, stage; write + update whenever K updates are due."""
        cfg = self.config
        for _ in range(steps):
            obs = self._obs
            action = self.act(obs)
            next_obs, reward, terminated, truncated, _ = self.env.step(self._to_env(action))
            next_obs = np.asarray(next_obs, np.float32).reshape(-1)
            if not (math.isfinite(reward) and np.isfinite(next_obs).all()):
                raise ValueError(f"{cfg.env_id} returned a non-finite transition at step {self.env_steps}")
            self._stage(obs, action, reward, next_obs, terminated, truncated)
            self.env_steps += 1
            self.episode_stats.step(reward)
            if terminated or truncated:
                self.episode_stats.end()
                next_obs, _ = self.env.reset()
                next_obs = np.asarray(next_obs, np.float32).reshape(-1)
            self._obs = next_obs

            due = self._updates_due(self.env_steps, cfg.learning_starts, cfg.utd_ratio)
            while due - self.updates >= cfg.chunk_updates:
                self.train_chunk()
            if self._staged == len(self._staging.reward):
                self._flush_staging()

    def _stage(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        i = self._staged
        for field, value in zip(self._staging, (obs, action, reward, next_obs, terminated, truncated)):
            field[i] = value
        self._staged += 1

    def _staged_rows(self) -> Batch:
        # Copies: on CPU, JAX may alias a numpy argument's memory, and the staging arrays are
        # overwritten while the (asynchronous) update may still be reading them.
        return Batch(*(field.copy() for field in self._staging))

    def _flush_staging(self) -> None:
        """Write staged rows into the device buffer without updating (warm-up, r < 1)."""
        self.buffer_state = add_only(self.buffer, self.buffer_state, self._staged_rows(), self._staged)
        self._staged = 0

    def train_chunk(self) -> None:
        """K = `chunk_updates` gradient updates now, as one jitted call: staged rows in, K
        scanned updates, then the write-back. `advance` calls it when K updates are due;
        benchmarks call it to time (and compile) exactly one chunk."""
        self.state, self.buffer_state, self.last_metrics = update_chunk(
            self.learner, self.state, self.buffer_state, self._staged_rows(), self._staged,
            self.updates, self.update_key,
        )
        self._staged = 0
        self.updates += self.config.chunk_updates
        # Write the scanned state back into the modules; acting reads the actor from them.
        self._write_back((self.model, self.optimizers), self.state)
        self.actor_leaves = jax.tree.leaves(nnx.state(self.model.actor))

    def scheduled_updates(self, transitions: int) -> int:
        """The update count the schedule prescribes after `transitions` env steps (whole chunks)."""
        cfg = self.config
        due = updates_due(transitions, cfg.learning_starts, cfg.utd_ratio)
        return due // cfg.chunk_updates * cfg.chunk_updates

    # -- records -------------------------------------------------------------------------------
    def train_metrics(self) -> dict[str, Any]:
        """Host copies of the last chunk's losses plus buffer diagnostics (syncs the device)."""
        out: dict[str, Any] = {k: float(v) for k, v in self.last_metrics.items()}
        self._flush_staging()  # diagnostics describe every transition collected so far
        out["buffer"] = self.buffer.stats(self.buffer_state)
        out["updates"] = self.updates
        out["episodes"] = self.episode_stats.episodes
        if self.episode_stats.recent:
            out["episode_return"] = self.episode_stats.recent_mean()
        return out

    def metrics(self) -> dict[str, float]:
        """The rlbench.api metrics: the numbers of `train_metrics`."""
        return {k: float(v) for k, v in self.train_metrics().items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}

    def close(self) -> None:
        self.env.close()

    def run(self, out_dir: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
        """Train for `total_steps`, evaluating every `eval_interval` steps and at the end."""
        cfg = self.config
        recorder = RunRecorder(out_dir, "sac", "jax", cfg)
        bar = Progress(cfg.total_steps, "sac", enabled=progress)
        last_eval = math.nan
        try:
            while self.env_steps < cfg.total_steps:
                boundaries = [cfg.total_steps, next_multiple(self.env_steps, cfg.eval_interval),
                              next_multiple(self.env_steps, cfg.log_interval)]
                start = time.perf_counter()
                steps_before = self.env_steps
                self.advance(min(boundaries) - self.env_steps)
                if self.env_steps % cfg.log_interval == 0 or self.env_steps == cfg.total_steps:
                    metrics = self.train_metrics()
                    sps = (self.env_steps - steps_before) / max(time.perf_counter() - start, 1e-9)
                    recorder.log(self.env_steps, kind="train", **metrics)
                    bar.update(self.env_steps, ret=metrics.get("episode_return", math.nan),
                               eval=last_eval, updates=self.updates, interval_sps=round(sps))
                if self.env_steps % cfg.eval_interval == 0 or self.env_steps == cfg.total_steps:
                    result = evaluate(self.policy(), cfg.env_id, cfg.eval_episodes,
                                      seed=cfg.seed + EVAL_SEED_OFFSET, faults=cfg.faults)
                    recorder.record_eval(self.env_steps, result)
                    last_eval = result.mean_return
                    bar.update(self.env_steps, force=True, eval=last_eval, updates=self.updates)
        finally:
            self.env.close()
        return recorder.finish(
            self.env_steps, updates=self.updates, episodes=self.episode_stats.episodes,
            device=str(self.device), buffer=self.buffer.stats(self.buffer_state),
        )


def train(config: SACConfig, out_dir: str | Path | None = None, progress: bool = False) -> dict[str, Any]:
    """Train SAC with `config`; write `summary.json` + `metrics.jsonl` to `out_dir` if given."""
    return SAC(config).run(out_dir=out_dir, progress=progress)


PROBE_OVERRIDES = dict(hidden_sizes=(64, 64), batch_size=64, buffer_size=5_000, learning_starts=200,
                       chunk_updates=8, policy_lr=1e-3, q_lr=1e-3, alpha_lr=1e-3, eval_episodes=4)
"""SAC settings for ~1,500-step probe runs (`rlbench check`, the probe tests)."""

SPEC = TrainerSpec(
    "sac", {"continuous"}, SACConfig, SAC, summary=TRAINERS["sac"].summary,
    check_overrides=PROBE_OVERRIDES, check_steps=1_500, run=train, backend="jax",
)
