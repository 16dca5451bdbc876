"""Shared machinery of the PyTorch DQN and IQN trainers.

One home for everything the two algorithms share, and for every fix from
``shared/seeds/multiprocessing-learning-issues.md``:

* `batch_to_tensors` — the one numpy → tensor conversion: dtype-checked, on the model's
  device (fault ``batch-not-on-device`` skips it);
* `QAgent.load_weights` — the one weight copy, which re-creates the optimizer so that it
  owns exactly the model's parameters (fault ``stale-optimizer``);
* `QAgent.update` — ``train()`` mode (fault ``eval-mode-training``), global-norm clipping
  (``no-grad-clipping``), the LR schedule (``no-lr-schedule``) and the target update on
  schedule (``target-not-updated``);
* `make_epsilon_schedule` — epsilon decays to ``epsilon_min`` (``epsilon-not-decayed``);
* `fit` — the CleanRL-style training loop both algorithms run.

Each fault is chosen once, when the agent or the schedule is built: the clean path never
tests a flag per step. The algorithms themselves (`DQNAgent`, `IQNAgent`) only supply a
network and a loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlbench.buffers import ReplayBuffer
from rlbench.config import QLearningConfig
from rlbench.envs import is_discrete, make
from rlbench.evaluation import EVAL_SEED_OFFSET, evaluate
from rlbench.faults import active_faults
from rlbench.runs import EpisodeStats, Progress, RunRecorder
from rlbench.schedules import epsilon_at, lr_factor, periodic_updates_due
from rlbench.types import Batch, EvalResult


# -- devices and networks ----------------------------------------------------------------
def resolve_device(name: str) -> torch.device:
    """``cpu`` | ``cuda`` | ``auto`` (cuda when available) → a torch device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch.cuda.is_available() is False")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or auto, got {name!r}")
    return torch.device(name)


def mlp(
    in_dim: int, hidden: Iterable[int], out_dim: int | None, dropout: float = 0.0,
    layer_norm: bool = False,
) -> nn.Sequential:
    """Linear → [LayerNorm] → ReLU → [Dropout] per hidden width, then a linear head to
    `out_dim` (none when `out_dim` is None: the torso ends with an activation)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers.append(nn.Linear(in_dim, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        in_dim = width
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class QNetwork(nn.Module):
    """obs [B, *obs_shape] → Q-values [B, n_actions]."""

    def __init__(self, obs_dim: int, n_actions: int, config: QLearningConfig) -> None:
        super().__init__()
        self.net = mlp(obs_dim, config.hidden_sizes, n_actions, config.dropout, config.layer_norm)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.flatten(1))


class NumpyMLP:
    """Greedy action of a plain Linear/ReLU MLP in numpy, for acting one step at a time.

    A single-observation torch forward costs ~20 µs of dispatch; this costs ~5 µs. The
    arrays are *views* of the CPU parameters, so in-place optimizer steps show up without
    copying; `QAgent` rebuilds it whenever the parameter tensors themselves change.
    Only used when the network has no train/eval-dependent layers (no dropout/LayerNorm),
    where eval-mode torch and this function compute the same thing.
    """

    def __init__(self, linears: list[nn.Linear]) -> None:
        self.layers = [(m.weight.detach().numpy().T, m.bias.detach().numpy()) for m in linears]

    @staticmethod
    def supports(net: nn.Module, device: torch.device) -> bool:
        mods = [m for m in net.modules() if not isinstance(m, (nn.Sequential, QNetwork))]
        return device.type == "cpu" and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in mods)

    def __call__(self, obs: np.ndarray) -> int:
        h = np.asarray(obs, dtype=np.float32).reshape(-1)
        last = len(self.layers) - 1
        for i, (w_t, b) in enumerate(self.layers):
            h = h @ w_t
            h += b
            if i < last:
                np.maximum(h, 0.0, out=h)
        return int(h.argmax())


# -- the one numpy → tensor conversion ---------------------------------------------------
class TensorBatch(NamedTuple):
    """A `Batch` as tensors on the model's device: obs/next_obs/reward float32, action
    int64 [B], terminated bool [B] (truncation is not terminal and is not needed)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


def _numeric(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"batch.{name}: expected numbers, got dtype {arr.dtype}")
    return arr


def batch_to_tensors(batch: Batch, device: torch.device) -> TensorBatch:
    """numpy `Batch` → `TensorBatch` on `device`, checking dtypes and shapes.

    Accepts any sane dtypes (float16/32/64 or integer observations, any integer actions,
    float or integer rewards, bool or 0/1 flags) and always yields the same float32/int64/
    bool tensors, so the loss never depends on what the buffer happened to store.
    """
    obs, next_obs = _numeric("obs", batch.obs), _numeric("next_obs", batch.next_obs)
    action, reward = _numeric("action", batch.action), _numeric("reward", batch.reward)
    terminated = _numeric("terminated", batch.terminated)
    n = obs.shape[0] if obs.ndim else -1
    if n < 1 or next_obs.shape != obs.shape:
        raise ValueError(f"batch.obs/next_obs: need equal shapes [B, ...], got {obs.shape} "
                         f"and {next_obs.shape}")
    if action.dtype.kind == "f" or action.dtype.kind == "b":
        raise ValueError(f"batch.action: expected integer action indices, got {action.dtype}")
    if action.size != n or reward.shape != (n,) or terminated.shape != (n,):
        raise ValueError(f"batch: action/reward/terminated must have {n} entries, got shapes "
                         f"{action.shape}, {reward.shape}, {terminated.shape}")
    if terminated.dtype != np.bool_:
        if not np.isin(terminated, (0, 1)).all():
            raise ValueError("batch.terminated: expected booleans or 0/1 values")
        terminated = terminated != 0

    def put(arr: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr)).to(device=device, dtype=dtype,
                                                              non_blocking=True)

    return TensorBatch(
        obs=put(obs, torch.float32),
        action=put(action.reshape(n), torch.int64),
        reward=put(reward, torch.float32),
        next_obs=put(next_obs, torch.float32),
        terminated=put(terminated, torch.bool),
    )


def _batch_as_is(batch: Batch, device: torch.device) -> TensorBatch:
    # FAULT batch-not-on-device: tensors keep the numpy dtypes and stay on the CPU.
    return TensorBatch(*(torch.as_tensor(np.asarray(x)) for x in
                         (batch.obs, batch.action, batch.reward, batch.next_obs, batch.terminated)))


# -- target networks -----------------------------------------------------------------------
@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target ← tau·online + (1 − tau)·target for every parameter; buffers are copied."""
    t_params, o_params = list(target.parameters()), list(online.parameters())
    torch._foreach_mul_(t_params, 1.0 - tau)
    torch._foreach_add_(t_params, torch._foreach_mul(o_params, tau))
    for t_buf, o_buf in zip(target.buffers(), online.buffers()):
        t_buf.copy_(o_buf)


@torch.no_grad()
def hard_update(target: nn.Module, online: nn.Module) -> None:
    """target ← online (parameters and buffers)."""
    for t, o in zip(target.parameters(), online.parameters()):
        t.copy_(o)
    for t_buf, o_buf in zip(target.buffers(), online.buffers()):
        t_buf.copy_(o_buf)


# -- schedules -----------------------------------------------------------------------------
def make_epsilon_schedule(config: QLearningConfig) -> Callable[[int], float]:
    """env step → epsilon: linear from epsilon_start to epsilon_min over
    exploration_fraction · total_steps (fault ``epsilon-not-decayed``: constant start)."""
    if "epsilon-not-decayed" in active_faults(config.faults):
        return lambda step: config.epsilon_start  # FAULT: the decay is never applied
    total, start, end, frac = (config.total_steps, config.epsilon_start, config.epsilon_min,
                               config.exploration_fraction)
    return lambda step: epsilon_at(step, total, start, end, frac)


def updates_due(steps: int, config: QLearningConfig) -> int:
    """Gradient updates the schedule allows once `steps` env steps exist: `gradient_steps`
    at every step s <= steps with s >= learning_starts and s % train_frequency == 0 (the
    rule `fit` follows; the actor/learner's learner paces itself by it)."""
    return periodic_updates_due(steps, config.learning_starts, config.train_frequency,
                                config.gradient_steps)


def planned_updates(config: QLearningConfig) -> int:
    """Gradient updates a whole run makes (the LR schedule spans exactly these)."""
    return updates_due(config.total_steps, config)


# -- the agent -------------------------------------------------------------------------------
class QAgent:
    """Online + target network, optimizer, update step and acting for value-based agents.

    Subclasses supply `build_network` and `loss`, and `q_values` when Q is not the raw
    network output (IQN averages quantiles).
    """

    def __init__(
        self, config: QLearningConfig, obs_shape: tuple[int, ...], n_actions: int,
        device: torch.device,
    ) -> None:
        self.config = config
        if device.type == "cpu" and torch.get_num_threads() != config.torch_threads:
            # Process-wide, but the agent is what knows its compute: on a busy 2-core box a
            # 2-thread pool makes a small-MLP update ~50x slower than one thread.
            torch.set_num_threads(config.torch_threads)
        self.obs_shape = tuple(obs_shape)
        self.obs_dim = int(np.prod(self.obs_shape))
        self.n_actions = int(n_actions)
        self.device = device
        self.updates = 0
        self.total_updates = planned_updates(config)
        self.online = self.build_network().to(device)
        self.target = self.build_network().to(device)
        hard_update(self.target, self.online)
        self.target.eval()  # the target is never trained: deterministic targets
        self.target.requires_grad_(False)
        self.optimizer = self._make_optimizer()
        self._set_lr()

        faults = active_faults(config.faults)
        # Every fault is picked here, once; the clean methods carry no flag checks.
        self._to_tensors = _batch_as_is if "batch-not-on-device" in faults else batch_to_tensors
        self._enter_update_mode = (
            self._leave_mode_as_is if "eval-mode-training" in faults else self._train_mode
        )
        self._clip = self._measure_only if "no-grad-clipping" in faults else self._clip_grads
        self._step_lr = self._noop if "no-lr-schedule" in faults else self._set_lr
        if "target-not-updated" in faults:
            self._update_target = self._noop
        elif config.target_update == "soft":
            self._update_target = self._soft_on_schedule
        else:
            self._update_target = self._hard_on_schedule
        if "stale-optimizer" in faults:
            self.load_weights = self._load_into_new_modules  # type: ignore[method-assign]
        self._refresh_actor()

    # -- to override ----------------------------------------------------------------------
    def build_network(self) -> nn.Module:
        raise NotImplementedError

    def loss(self, tb: TensorBatch) -> torch.Tensor:
        """Scalar loss of the online network on a converted batch."""
        raise NotImplementedError

    def q_values_tensor(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values [B, n_actions] of the online network (called under inference mode)."""
        return self.online(obs)

    # -- acting ------------------------------------------------------------------------------
    def _refresh_actor(self) -> None:
        """Rebuild the numpy fast path (after the parameter tensors were replaced)."""
        fast = NumpyMLP.supports(self.online, self.device) and type(self).q_values_tensor is (
            QAgent.q_values_tensor)
        linears = [m for m in self.online.modules() if isinstance(m, nn.Linear)]
        self._greedy_one = NumpyMLP(linears) if fast else self._greedy_one_torch

    def q_values(self, obs: np.ndarray) -> np.ndarray:
        """Q-values [B, n_actions] for observations [B, *obs_shape], eval mode."""
        self.online.eval()
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(obs, np.float32), device=self.device)
            return self.q_values_tensor(x.reshape(-1, *self.obs_shape)).cpu().numpy()

    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        """argmax_a Q(obs, a) for observations [B, *obs_shape] → [B] int64."""
        return self.q_values(obs).argmax(axis=1)

    def _greedy_one_torch(self, obs: np.ndarray) -> int:
        return int(self.greedy_actions(np.asarray(obs)[None])[0])

    def greedy_action(self, obs: np.ndarray) -> int:
        """Greedy action for one observation (the evaluation policy)."""
        return self._greedy_one(obs)

    def act(self, obs: np.ndarray, epsilon: float, rng: np.random.Generator) -> int:
        """Epsilon-greedy action for one observation."""
        if rng.random() < epsilon:
            return int(rng.integers(self.n_actions))
        return self._greedy_one(obs)

    # -- learning ----------------------------------------------------------------------------
    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step on a numpy batch; returns loss, pre-clip grad norm and LR."""
        tb = self._to_tensors(batch, self.device)
        self._enter_update_mode()
        loss = self.loss(tb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = self._clip()
        lr = self.optimizer.param_groups[0]["lr"]  # the LR this step used
        self.optimizer.step()
        self.updates += 1
        self._step_lr()
        self._update_target()
        return {"loss": loss.item(), "grad_norm": grad_norm.item(), "lr": lr}

    def _train_mode(self) -> None:
        # Modes are only ever switched on the root module (train() here, eval() when acting),
        # so the root flag tells; skipping the recursive no-op saves ~5% of a CleanRL-settings step.
        if not self.online.training:
            self.online.train()

    def _leave_mode_as_is(self) -> None:
        pass  # FAULT eval-mode-training: whatever mode acting left the net in (eval) stays

    def _grad_norm(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        grads = [p.grad for p in self.online.parameters() if p.grad is not None]
        return grads, torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))

    def _clip_grads(self) -> torch.Tensor:
        """Scale all gradients by min(1, max_grad_norm / global_norm); return the norm.

        What `nn.utils.clip_grad_norm_(foreach=True)` computes, without its per-call
        device/dtype grouping: half the cost on a small MLP, and no host sync."""
        grads, norm = self._grad_norm()
        torch._foreach_mul_(grads, (self.config.max_grad_norm / (norm + 1e-6)).clamp_(max=1.0))
        return norm

    def _measure_only(self) -> torch.Tensor:
        # FAULT no-grad-clipping: the norm is measured and logged but never applied.
        return self._grad_norm()[1]

    def _set_lr(self) -> None:
        """LR for the next update: learning_rate × schedule factor at `self.updates`."""
        c = self.config
        lr = c.learning_rate * lr_factor(c.lr_schedule, self.updates, self.total_updates,
                                         c.lr_final_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _hard_on_schedule(self) -> None:
        if self.updates % self.config.target_update_interval == 0:
            hard_update(self.target, self.online)

    def _soft_on_schedule(self) -> None:
        if self.updates % self.config.target_update_interval == 0:
            soft_update(self.target, self.online, self.config.tau)

    def _noop(self) -> None:
        pass

    # -- weights -------------------------------------------------------------------------------
    def _make_optimizer(self) -> torch.optim.Optimizer:
        # fused Adam: one kernel for all parameters; saves ~20% of a small-MLP update on CPU.
        return torch.optim.Adam(self.online.parameters(), lr=self.config.learning_rate,
                                fused=True)

    def get_weights(self) -> dict[str, torch.Tensor]:
        """CPU copies of the online network's state_dict (safe to send to other processes)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.online.state_dict().items()}

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """THE weight copy: online and target ← `state_dict`, then a fresh optimizer.

        The copy is in place, and the optimizer is re-created over `self.online.parameters()`
        afterwards, so it owns exactly the model's parameters and carries no Adam moments
        estimated for the weights that were overwritten. The LR schedule position
        (`self.updates`) is kept.
        """
        self.online.load_state_dict(state_dict)
        hard_update(self.target, self.online)
        self.optimizer = self._make_optimizer()
        self._set_lr()
        self._refresh_actor()

    def _load_into_new_modules(self, state_dict: dict[str, torch.Tensor]) -> None:
        # FAULT stale-optimizer: a fresh module receives the weights, but the optimizer is
        # not re-created, so it keeps stepping the replaced module's parameters.
        fresh = self.build_network().to(self.device)
        fresh.load_state_dict(state_dict)
        self.online = fresh
        hard_update(self.target, self.online)
        self._refresh_actor()

    def optimizer_params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]


def make_agent(
    config: QLearningConfig, env: gym.Env, device: torch.device,
    agent_cls: type[QAgent] | None = None,
) -> QAgent:
    """Build the agent for `env` (discrete actions only). `agent_cls` defaults to the
    class matching the config (DQNConfig → DQNAgent, IQNConfig → IQNAgent)."""
    if not is_discrete(env):
        raise ValueError(f"DQN/IQN need a Discrete action space, got {env.action_space}")
    if agent_cls is None:
        from rlbench.config import IQNConfig

        if isinstance(config, IQNConfig):
            from rlbench.trainers.iqn_torch import IQNAgent as agent_cls
        else:
            from rlbench.trainers.dqn_torch import DQNAgent as agent_cls
    obs_shape = env.observation_space.shape
    if obs_shape is None:
        raise ValueError(f"observation space without a shape: {env.observation_space}")
    return agent_cls(config, tuple(obs_shape), int(env.action_space.n), device)


def evaluate_agent(agent: QAgent, config: QLearningConfig) -> EvalResult:
    """The greedy policy through `rlbench.evaluation.evaluate` (fixed eval seed)."""
    return evaluate(agent.greedy_action, config.env_id, config.eval_episodes,
                    seed=config.seed + EVAL_SEED_OFFSET, faults=config.faults)


# -- the training loop -----------------------------------------------------------------------
class PendingTransitions:
    """Collects up to `capacity` transitions and writes them with one `add_batch`.

    The buffer validates every write; doing that once per train_frequency steps instead of
    once per step saves ~10 µs per env step (a tenth of a CleanRL-settings step). `fit`
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
        from rlbench.trainers import actor_learner

        return actor_learner.train(config, out_dir=out_dir, progress=progress)
    return fit(config, agent_cls, algo, out_dir, progress)[0]
