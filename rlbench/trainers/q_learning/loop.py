"""The CleanRL-style training loop DQN and IQN share, and the hand-over to the
actor/learner trainer when actors are configured."""

from __future__ import annotations

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


def fit(
    config: QLearningConfig,
    agent_cls: type[QAgent],
    algo: str,
    out_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], QAgent]:
    """Train one agent with epsilon-greedy acting and replay; return (summary, agent).

    Single env, CleanRL order: act, step, store (time-limit truncation is stored as
    non-terminal so it bootstraps), then every train_frequency steps from
    learning_starts on, gradient_steps updates. Evaluation every eval_interval steps and
    at the end.
    """
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    env = make(config.env_id, seed=config.seed)
    agent = make_agent(config, env, device, agent_cls)
    buffer = ReplayBuffer(config.buffer_size, agent.obs_shape, faults=config.faults)
    pending = PendingTransitions(config.train_frequency, agent.obs_shape)
    epsilon = make_epsilon_schedule(config)
    recorder = RunRecorder(out_dir, algo, "torch", config)
    bar = Progress(config.total_steps, algo, enabled=progress)

    episodes = EpisodeStats(window=20)
    info: dict[str, float] = {}
    obs, _ = env.reset()
    try:
        for step in range(1, config.total_steps + 1):
            eps = epsilon(step - 1)
            action = agent.act(obs, eps, rng)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            pending.add(obs, action, reward, next_obs, terminated, truncated)
            episodes.step(reward)
            obs = next_obs
            if terminated or truncated:
                ep_return, ep_len = episodes.end()
                recorder.log(step, kind="episode", ret=ep_return, length=ep_len)
                obs, _ = env.reset()

            if step % config.train_frequency == 0:
                pending.flush_into(buffer)  # the buffer is complete whenever we sample
            if step >= config.learning_starts and step % config.train_frequency == 0:
                for _ in range(config.gradient_steps):
                    info = agent.update(buffer.sample(config.batch_size, rng))

            if step % config.log_interval == 0:
                recorder.log(step, kind="train", epsilon=eps, updates=agent.updates, **info)
            if step % config.eval_interval == 0 or step == config.total_steps:
                recorder.record_eval(step, evaluate_agent(agent, config))
            if step % config.log_interval == 0 or step == config.total_steps:
                bar.update(step, force=step == config.total_steps, eps=eps,
                           ret=episodes.recent_mean(),
                           eval=recorder.eval_history[-1]["return_mean"]
                           if recorder.eval_history else float("nan"))
    except BaseException:
        recorder.close()
        raise
    finally:
        env.close()
    pending.flush_into(buffer)
    summary = recorder.finish(
        config.total_steps,
        updates=agent.updates,
        episodes=episodes.episodes,
        device=str(device),
        buffer=buffer.stats(),
        final_epsilon=epsilon(config.total_steps),
    )
    return summary, agent


def train_dispatch(
    config: QLearningConfig, agent_cls: type[QAgent], algo: str,
    out_dir: str | Path | None, progress: bool,
) -> dict[str, Any]:
    """`fit` for actors == 0, the actor/learner trainer for actors >= 1."""
    if config.actors >= 1:
        return trainer_module(algo, actors=True).train(config, out_dir=out_dir,
                                                       progress=progress)
    return fit(config, agent_cls, algo, out_dir, progress)[0]

