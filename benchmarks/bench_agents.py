"""One act step and one update step of each agent, outside the training loop.

DQN/IQN: `QAgent.act` (epsilon 0, so the network runs) and `QAgent.update` on a fixed batch
from a filled numpy buffer, CartPole-sized. SAC: the jitted exploration action and one jitted
update chunk (write staged rows + K scanned gradient updates) on dm_control cartpole swingup.
"""

from __future__ import annotations

import numpy as np

from benchmarks._common import (
    BufferAdapter,
    limit_threads,
    random_transitions,
    ready,
    require,
    require_trainer,
)


def _q_agent(algo: str, batch_size: int = 128):
    """(agent, filled numpy buffer) for CartPole with the trainer's default config."""
    q_learning = require("rlbench.trainers.q_learning")
    module = require_trainer(algo)
    envs = require("rlbench.envs")
    limit_threads()
    env = envs.make("CartPole-v1", seed=0)
    config = module.Config(batch_size=batch_size)
    agent = q_learning.make_agent(config, env, q_learning.resolve_device(config.device))
    env.close()
    buffer = BufferAdapter("numpy", 10_000, agent.obs_shape, ())
    buffer.fill(10_000, random_transitions(10_000, agent.obs_shape, ()))
    return agent, buffer


class QUpdate:
    """`QAgent.update(batch)`: tensor conversion, loss, backward, clip, Adam, schedules."""

    params = [["dqn", "iqn"], [32, 128, 256]]
    param_names = ["algo", "batch_size"]

    def setup(self, algo: str, batch_size: int) -> None:
        self.agent, buffer = _q_agent(algo, batch_size)
        self.batch = buffer.sample(batch_size)
        for _ in range(3):  # warm-up: allocator, autograd graph caches
            self.time_update(algo, batch_size)

    def time_update(self, algo: str, batch_size: int) -> None:
        ready(self.agent.update(self.batch))  # .item() inside already syncs; ready() for CUDA


class QAct:
    """`QAgent.act(obs, epsilon=0)`: the greedy forward pass paid on every env step."""

    params = [["dqn", "iqn"]]
    param_names = ["algo"]

    def setup(self, algo: str) -> None:
        self.agent, _ = _q_agent(algo)
        self.rng = np.random.default_rng(0)
        self.obs = np.array([0.01, -0.02, 0.03, 0.04], np.float32)
        self.time_act(algo)

    def time_act(self, algo: str) -> None:
        self.agent.act(self.obs, 0.0, self.rng)


def _sac(chunk_updates: int):
    """A SAC run on dmc:cartpole-swingup past learning_starts, its jitted functions compiled."""
    sac_jax = require_trainer("sac")
    warmup = 1_000
    config = sac_jax.Config(
        env_id="dmc:cartpole-swingup", buffer_size=20_000, learning_starts=warmup,
        chunk_updates=chunk_updates, total_steps=100_000,
    )
    sac = sac_jax.SAC(config)
    sac.advance(warmup)  # fill the buffer past learning_starts
    sac.train_chunk()  # compile the update chunk outside the timer
    ready(sac.state)
    return sac


class SACUpdate:
    """One jitted SAC update call on dmc:cartpole-swingup (256x256 nets, batch 256): staged
    rows in, K = chunk_updates scanned gradient updates, write-back. Divide by K for the
    per-update cost; compilation happens in setup."""

    params = [[1, 16]]
    param_names = ["chunk_updates"]
    timeout = 600

    def setup(self, chunk_updates: int) -> None:
        self.sac = _sac(chunk_updates)

    def teardown(self, chunk_updates: int) -> None:
        if hasattr(self, "sac"):  # setup may have skipped
            self.sac.env.close()

    def time_update_chunk(self, chunk_updates: int) -> None:
        self.sac.train_chunk()  # the unit SAC.advance dispatches once K updates are due
        ready(self.sac.state)


class SACAct:
    """SAC's jitted exploration action for one observation (paid on every env step)."""

    timeout = 600

    def setup(self) -> None:
        self.sac = _sac(1)
        self.obs = np.asarray(self.sac._obs, np.float32)
        self.time_act()  # compile the jitted actor (setup ran only uniform warm-up actions)

    def teardown(self) -> None:
        if hasattr(self, "sac"):  # setup may have skipped
            self.sac.env.close()

    def time_act(self) -> None:
        self.sac.act(self.obs)  # returns a host numpy array, so the result is ready
