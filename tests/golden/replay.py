"""Replay goldens: fixed batches through the real update step, no environment in the loop.

A whole training run cannot be a cross-machine golden: another CPU picks other BLAS/oneDNN/XLA
kernels, a last-bit difference flips one greedy action, and the trajectory forks (a DQN
CartPole run recorded 132 on one CPU and 98 on another, deterministic on each). Here no
action is ever chosen from the network: the batches are a fixed function of a seed (numpy's
PCG64 stream, identical on every platform) and the initial weights come from torch's / JAX's
counter-based generators, also platform-independent. What is left are rounding differences in
the update arithmetic, and those stay small and continuous: nothing in an update step is a
discrete choice that a rounding tie could flip into a different trajectory — the TD max is
continuous in its inputs; the one discrete choice, IQN's next action, moves one sample's
target by at most the gap it broke a tie on.

What is recorded (`replay_*` returns a flat dict of floats):
* the mean loss (and grad norm, LR for the torch agents) over each block of updates;
* per-parameter-tensor L2 norms of the online and the target network after the last update.
Every change of the update maths moves these far beyond the tolerance: a dropped optimizer
step or target update, a changed loss, target, discount, clipping, LR schedule, Polyak rate,
reward scaling or write-back (tests/golden/test_golden_replay.py names the faults it fails on).

`perturb` multiplies every initial weight by (1 + perturb · u), u ~ U(-1, 1): with perturb at
float32's epsilon this is the size of difference a different kernel makes in one op, and how
far it has grown after the replay measures how sensitive the recorded values are to rounding
(scripts/golden_kernels.py; the tolerance in the tests comes from that measurement).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlbench.types import Batch

BLOCK = 25
"""Updates per recorded loss mean: block means of a noisy loss are steadier than single steps."""


def cartpole_like_batches(n_batches: int, batch_size: int, seed: int = 0) -> list[Batch]:
    """`n_batches` discrete-action batches with CartPole's shapes, dtypes and scales (what
    rlbench's numpy buffer hands out: float32 obs, int64 actions, float32 rewards, bool flags;
    reward 1, about 5% terminal). next_obs is obs plus a small step, so the TD target has a
    learnable structure rather than pure noise."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 1.5, 0.1, 1.5], np.float32)
    out = []
    for _ in range(n_batches):
        obs = (rng.standard_normal((batch_size, 4)) * scale).astype(np.float32)
        action = rng.integers(0, 2, batch_size).astype(np.int64)
        push = np.where(action == 1, 1.0, -1.0).astype(np.float32)[:, None]
        next_obs = (obs + 0.05 * push * scale + 0.02 * rng.standard_normal((batch_size, 4))
                    ).astype(np.float32)
        terminated = rng.random(batch_size) < 0.05
        reward = np.ones(batch_size, np.float32)
        out.append(Batch(obs, action, reward, next_obs, terminated, np.zeros(batch_size, bool)))
    return out


def swingup_like_batches(n_rows: int, seed: int = 0) -> Batch:
    """`n_rows` continuous-control transitions with cartpole-swingup's shapes (5-d obs, 1-d
    action in [-1, 1], reward in [0, 1], never terminal), as one block for the buffer."""
    rng = np.random.default_rng(seed)
    obs = rng.standard_normal((n_rows, 5)).astype(np.float32)
    action = rng.uniform(-1, 1, (n_rows, 1)).astype(np.float32)
    next_obs = (obs + 0.05 * action + 0.02 * rng.standard_normal((n_rows, 5))).astype(np.float32)
    reward = np.clip(1.0 - 0.3 * np.abs(obs[:, 0]) - 0.1 * action[:, 0] ** 2, 0, 1).astype(np.float32)
    return Batch(obs, action, reward, next_obs, np.zeros(n_rows, bool), np.zeros(n_rows, bool))


def deviation(got: float, golden: float, floor: float) -> float:
    """What a golden tolerance bounds: |got - golden| relative to max(|golden|, floor), i.e.
    absolute for values smaller than `floor` (a bias norm, a loss near zero)."""
    return abs(got - golden) / max(abs(golden), floor)


def _block_means(name: str, values: list[float]) -> dict[str, float]:
    return {f"{name}_mean_{i}_{min(i + BLOCK, len(values)) - 1}": float(np.mean(values[i:i + BLOCK]))
            for i in range(0, len(values), BLOCK)}


def replay_torch(algo: str, variant: str = "hard", updates: int = 210, perturb: float = 0.0,
                 faults: str = "") -> dict[str, float]:
    """`updates` DQN or IQN updates on fixed CartPole-like batches; the recorded values.

    The configuration puts every update-maths path in play: dropout (acting in eval mode
    between updates, which must train in train mode), a
    linear LR schedule spanning the replay, clipping that binds (max_grad_norm 1), hard target
    copies every 50 updates or a Polyak rate of 0.05 (`variant`), and a weights round-trip
    through `load_weights` halfway (what the actor/learner does), after which training must
    go on through the same optimizer state.
    """
    import torch

    from rlbench.config import DQNConfig, IQNConfig
    from rlbench.trainers.dqn_torch import DQNAgent
    from rlbench.trainers.iqn_torch import IQNAgent

    config_cls, agent_cls = {"dqn": (DQNConfig, DQNAgent), "iqn": (IQNConfig, IQNAgent)}[algo]
    if variant not in ("hard", "soft"):
        raise ValueError(f"variant must be hard or soft, got {variant!r}")
    # train_frequency 1 from step 0: the LR schedule spans exactly `updates` updates.
    config = config_cls(
        env_id="CartPole-v1", seed=0, total_steps=updates, learning_starts=1,
        train_frequency=1, batch_size=64, max_grad_norm=1.0, dropout=0.1,
        lr_schedule="linear", target_update=variant, target_update_interval=50, tau=0.05,
        faults=faults,
    )
    torch.manual_seed(config.seed)
    agent = agent_cls(config, (4,), 2, torch.device("cpu"))
    if perturb:
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in list(agent.online.parameters()) + list(agent.target.parameters()):
                p.mul_(1 + perturb * (2 * torch.rand(p.shape, generator=gen) - 1))
    logs: dict[str, list[float]] = {"loss": [], "grad_norm": [], "lr": []}
    for i, batch in enumerate(cartpole_like_batches(updates, config.batch_size)):
        if i == updates // 2:
            agent.load_weights(agent.get_weights())
        agent.greedy_actions(batch.obs[:4])  # acting between updates, as the loop does (eval mode)
        for key, value in agent.update(batch).items():
            logs[key].append(value)
    values: dict[str, float] = {}
    for key, series in logs.items():
        values |= _block_means(key, series)
    for net_name, net in (("online", agent.online), ("target", agent.target)):
        for name, p in net.named_parameters():
            values[f"{net_name}.{name}.l2"] = float(p.detach().double().norm())
    return values


def replay_sac(chunks: int = 8, perturb: float = 0.0, faults: str = "") -> dict[str, Any]:
    """`chunks` x 16 scanned SAC updates on a fixed swingup-like buffer; the recorded values.

    Runs the trainer's own jitted `train_chunk` (buffer sampling with the run's keys, critic,
    actor, temperature and Polyak updates, then the write-back into the modules); the norms
    are read from the modules, i.e. from what acting and evaluation use.
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from rlbench.config import SACConfig
    from rlbench.trainers.sac_jax import SAC, add_only

    config = SACConfig(env_id="dmc:cartpole-swingup", seed=0, total_steps=10_000,
                       learning_starts=1, buffer_size=4_096, batch_size=128,
                       hidden_sizes=(64, 64), faults=faults)
    sac = SAC(config)
    if perturb:
        state = nnx.state(sac.model, nnx.Param)
        leaves, treedef = jax.tree.flatten(state)
        keys = jax.random.split(jax.random.key(1), len(leaves))
        leaves = [x * (1 + perturb * jax.random.uniform(k, x.shape, x.dtype, -1, 1))
                  for x, k in zip(leaves, keys)]
        nnx.update(sac.model, jax.tree.unflatten(treedef, leaves))
        sac.graphdef, sac.state = nnx.split((sac.model, sac.optimizers))
    data = swingup_like_batches(config.buffer_size)
    sac.buffer_state = add_only(sac.buffer, sac.buffer_state, data, config.buffer_size)
    logs: dict[str, list[float]] = {}
    for _ in range(chunks):
        sac.train_chunk()
        for key, value in sac.last_metrics.items():
            logs.setdefault(key, []).append(float(value))
    values = {f"{key}_chunk{i}": v for key, series in logs.items() for i, v in enumerate(series)
              if i % 2 == 1}  # every second chunk mean: 16-update means, 4 per metric
    flat = nnx.to_flat_state(nnx.state(sac.model, nnx.Param))
    for path, leaf in flat:
        name = ".".join(str(p) for p in path)
        values[f"{name}.l2"] = float(jnp.linalg.norm(jnp.ravel(leaf[...]).astype(jnp.float32)))
    return values
