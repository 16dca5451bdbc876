"""The CleanRL-style training loop DQN and IQN share, and the hand-over to the
actor/learner trainer when actors are configured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rlbench.buffers import ReplayBuffer
from rlbench.config import QLearningConfig
from rlbench.envs import make
from rlbench.runs import EpisodeStats, Progress, RunRecorder
from rlbench.trainers import trainer_module
from rlbench.trainers.q_learning.agent import (
    QAgent,
    evaluate_agent,
    make_agent,
    make_epsilon_schedule,
)
from rlbench.trainers.q_learning.networks import resolve_device


# -- the training loop -----------------------------------------------------------------------
class PendingTransitions:
    """Collects up to `capacity` transitions and writes them with one `add_batch`.

    The buffer validates every write; doing that once per train_frequency steps instead of
    once per step takes a visible share of a small-network step off the hot loop. `fit`
    flushes right before it samples, so updates see exactly the transitions sequential
    `add` calls would have stored, in the same FIFO order.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...]) -> None:
        self.obs = np.zeros((capacity, *obs_shape), np.float32)
        self.next_obs = np.zeros_like(self.obs)
        self.action = np.zeros(capacity, np.int64)
        self.reward = np.zeros(capacity, np.float64)  # the buffer casts and checks it
        self.terminated = np.zeros(capacity, bool)
        self.truncated = np.zeros(capacity, bool)
        self.n = 0

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        i = self.n
        if i == len(self.action):
            raise ValueError("PendingTransitions is full: flush_into(buffer) first")
        self.obs[i], self.action[i], self.reward[i] = obs, action, reward
        self.next_obs[i], self.terminated[i], self.truncated[i] = next_obs, terminated, truncated
        self.n = i + 1

    def flush_into(self, buffer: ReplayBuffer, **per_row: np.ndarray) -> None:
        """Write the held rows with one `add_batch` (extra per-row columns such as a policy
        version go in as keyword arrays) and empty the holder."""
        n, self.n = self.n, 0
        if n:
            buffer.add_batch(self.obs[:n], self.action[:n], self.reward[:n], self.next_obs[:n],
                             self.terminated[:n], self.truncated[:n],
                             **{k: v[:n] for k, v in per_row.items()})


class QLearningTrainer:
    """One DQN/IQN run, resumable: `advance(n)` runs n more env steps of the loop.

    Single env, CleanRL order: act, step, store (time-limit truncation is stored as
    non-terminal so it bootstraps), then every train_frequency steps from
    learning_starts on, gradient_steps updates. Evaluation every eval_interval steps and
    at step total_steps. Implements the `rlbench.api` trainer protocol, with `values`.
    """

    def __init__(self, config: QLearningConfig, agent_cls: type[QAgent], algo: str,
                 out_dir: str | Path | None = None, progress: bool = False) -> None:
        torch.manual_seed(config.seed)
        self.config, self.algo = config, algo
        self.device = resolve_device(config.device)
        self.rng = np.random.default_rng(config.seed)
        self.env = make(config.env_id, seed=config.seed)
        try:
            self.agent = make_agent(config, self.env, self.device, agent_cls)
        except BaseException:
            self.env.close()
            raise
        self.buffer = ReplayBuffer(config.buffer_size, self.agent.obs_shape, faults=config.faults)
        self.pending = PendingTransitions(config.train_frequency, self.agent.obs_shape)
        self.epsilon = make_epsilon_schedule(config)
        self.recorder = RunRecorder(out_dir, algo, "torch", config)
        self.bar = Progress(config.total_steps, algo, enabled=progress)
        self.episodes = EpisodeStats(window=20)
        self.info: dict[str, float] = {}
        self.env_steps = 0
        self._obs, _ = self.env.reset()

    def advance(self, steps: int) -> None:
        """Run `steps` more env steps (a crash closes the env and the run record)."""
        config, agent, recorder = self.config, self.agent, self.recorder
        obs, step = self._obs, self.env_steps
        try:
            for step in range(self.env_steps + 1, self.env_steps + steps + 1):
                eps = self.epsilon(step - 1)
                action = agent.act(obs, eps, self.rng)
                next_obs, reward, terminated, truncated, _ = self.env.step(action)
                self.pending.add(obs, action, reward, next_obs, terminated, truncated)
                self.episodes.step(reward)
                obs = next_obs
                if terminated or truncated:
                    ep_return, ep_len = self.episodes.end()
                    recorder.log(step, kind="episode", ret=ep_return, length=ep_len)
                    obs, _ = self.env.reset()

                if step % config.train_frequency == 0:
                    self.pending.flush_into(self.buffer)  # complete whenever we sample
                if step >= config.learning_starts and step % config.train_frequency == 0:
                    for _ in range(config.gradient_steps):
                        self.info = agent.update(self.buffer.sample(config.batch_size, self.rng))

                if step % config.log_interval == 0:
                    recorder.log(step, kind="train", epsilon=eps, updates=agent.updates, **self.info)
                if step % config.eval_interval == 0 or step == config.total_steps:
                    recorder.record_eval(step, evaluate_agent(agent, config))
                if step % config.log_interval == 0 or step == config.total_steps:
                    self.bar.update(step, force=step == config.total_steps, eps=eps,
                                    ret=self.episodes.recent_mean(),
                                    eval=recorder.eval_history[-1]["return_mean"]
                                    if recorder.eval_history else float("nan"))
        except BaseException:
            self.close()
            raise
        self._obs, self.env_steps = obs, step

    # -- the rlbench.api protocol --------------------------------------------------------------
    def policy(self) -> Callable[[np.ndarray], int]:
        """The greedy policy (reads the online network at call time)."""
        return self.agent.greedy_action

    def values(self, obs: np.ndarray) -> np.ndarray:
        """Q(obs, a) for every action, shape [n_actions]."""
        return self.agent.q_values(np.asarray(obs)[None])[0]

    def metrics(self) -> dict[str, float]:
        return q_learning_metrics(self.info, self.agent.updates, self.episodes,
                                  self.epsilon(self.env_steps), self.recorder)

    def close(self) -> None:
        self.recorder.close()
        self.env.close()

    def finish(self) -> dict[str, Any]:
        """Close the env and write the run record; return the summary."""
        self.env.close()
        self.pending.flush_into(self.buffer)
        return self.recorder.finish(
            self.env_steps,
            updates=self.agent.updates,
            episodes=self.episodes.episodes,
            device=str(self.device),
            buffer=self.buffer.stats(),
            final_epsilon=self.epsilon(self.env_steps),
        )


def q_learning_metrics(info: dict[str, float], updates: int, episodes: EpisodeStats,
                       epsilon: float, recorder: RunRecorder) -> dict[str, float]:
    """The rlbench.api metrics of a DQN/IQN run (single process or actor/learner): the last
    update's losses, counts, epsilon, the recent episode return and the last evaluation."""
    out = {k: float(v) for k, v in info.items()}
    out |= {"updates": float(updates), "episodes": float(episodes.episodes), "epsilon": float(epsilon)}
    if episodes.recent:
        out["episode_return"] = episodes.recent_mean()
    if recorder.eval_history:
        out["eval_return"] = recorder.eval_history[-1]["return_mean"]
    return out


def fit(
    config: QLearningConfig,
    agent_cls: type[QAgent],
    algo: str,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], QAgent]:
    """Train one agent for `config.total_steps`; return (summary, agent)."""
    trainer = QLearningTrainer(config, agent_cls, algo, out_dir, progress)
    trainer.advance(config.total_steps)
    return trainer.finish(), trainer.agent


PROBE_OVERRIDES = dict(learning_starts=200, train_frequency=1, batch_size=64, learning_rate=3e-3,
                       hidden_sizes=(32, 32), target_update_interval=50, exploration_fraction=0.5,
                       eval_episodes=2)
"""DQN/IQN settings for few-hundred-step probe runs (`rlbench check`, the probe tests)."""


def make_trainer(config: QLearningConfig, agent_cls: type[QAgent], algo: str) -> Any:
    """The `rlbench.api` factory of DQN/IQN: a `QLearningTrainer`, or with actors >= 1 the
    actor/learner trainer (found through the registry, like `train_dispatch`)."""
    if config.actors >= 1:
        return trainer_module(algo, actors=True).ActorLearnerTrainer(config, agent_cls=agent_cls)
    return QLearningTrainer(config, agent_cls, algo)


def train_dispatch(
    config: QLearningConfig, agent_cls: type[QAgent], algo: str,
    out_dir: str | Path | None, progress: bool,
) -> dict[str, Any]:
    """`fit` for actors == 0, the actor/learner trainer for actors >= 1."""
    if config.actors >= 1:
        return trainer_module(algo, actors=True).train(config, out_dir=out_dir,
                                                       progress=progress)
    return fit(config, agent_cls, algo, out_dir, progress)[0]

