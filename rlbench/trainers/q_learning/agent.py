"""The value-based agent shared by DQN and IQN: the one numpy → tensor conversion, target
updates, the epsilon and update-count schedules, and the update step.

Every fix from the multi-process post-mortem (docs/faults.md) that lives in the agent has
its one home here:

* `batch_to_tensors` — dtype-checked, on the model's device (fault ``batch-not-on-device``
  skips it);
* `QAgent.load_weights` — the one weight copy, which re-creates the optimizer so that it
  owns exactly the model's parameters (fault ``stale-optimizer``);
* `QAgent.update` — ``train()`` mode (fault ``eval-mode-training``), global-norm clipping
  (``no-grad-clipping``), the LR schedule (``no-lr-schedule``) and the target update on
  schedule (``target-not-updated``);
* `make_epsilon_schedule` — epsilon decays to ``epsilon_min`` (``epsilon-not-decayed``).

Each fault is chosen once, when the agent or the schedule is built: the clean path never
tests a flag per step. The algorithms themselves (`DQNAgent`, `IQNAgent`) only supply a
network and a loss.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from rlbench.config import IQNConfig, QLearningConfig
from rlbench.envs import is_discrete
from rlbench.evaluation import EVAL_SEED_OFFSET, evaluate
from rlbench.faults import active_faults
from rlbench.schedules import epsilon_at, lr_factor, periodic_updates_due
from rlbench.trainers import trainer_module
from rlbench.trainers.q_learning.networks import NumpyMLP
from rlbench.types import Batch, EvalResult


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
            # Process-wide, but the agent is what knows its compute: on a busy small box a
            # multi-thread pool makes a small-MLP update far slower than one thread.
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
        self._optimizer: torch.optim.Optimizer | None = None  # made on first use

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

    def loss_and_grads(self, tb: TensorBatch) -> torch.Tensor:
        """`loss(tb)`, with each online parameter's `.grad` set to its gradient (replaced,
        not accumulated). Subclasses may compute the same gradient faster."""
        loss = self.loss(tb)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        return loss

    def q_values_tensor(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values [B, n_actions] of the online network (called under inference mode)."""
        return self.online(obs)

    # -- acting ------------------------------------------------------------------------------
    def _refresh_actor(self) -> None:
        """Rebuild the fast paths that hold the parameter tensors (the numpy acting path
        here, DQN's hand-written gradient in its override) after the tensors were replaced."""
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
        loss = self.loss_and_grads(tb)
        grad_norm = self._clip()
        lr = self.optimizer.param_groups[0]["lr"]  # the LR this step used
        self.optimizer.step()
        self.updates += 1
        self._step_lr()
        self._update_target()
        return {"loss": loss.item(), "grad_norm": grad_norm.item(), "lr": lr}

    def _train_mode(self) -> None:
        # Modes are only ever switched on the root module (train() here, eval() when acting),
        # so the root flag tells; the recursive no-op is not free on a small network.
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
    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """Adam over the online network's current parameters, made on first use (after
        `load_weights`, a fresh one): an agent that only acts, like an actor process's,
        never makes one. torch.optim's first optimizer imports torch._dynamo, ~1.5 s of a
        process's start-up."""
        if self._optimizer is None:
            self._optimizer = self._make_optimizer()
            self._set_lr()
        return self._optimizer

    def _make_optimizer(self) -> torch.optim.Optimizer:
        # fused Adam: one kernel for all parameters instead of one per tensor, which matters
        # for a small MLP whose update is dominated by per-tensor overhead.
        return torch.optim.Adam(self.online.parameters(), lr=self.config.learning_rate,
                                fused=True)

    def get_weights(self) -> dict[str, torch.Tensor]:
        """CPU copies of the online network's state_dict (safe to send to other processes)."""
        return {k: v.detach().to("cpu", copy=True) for k, v in self.online.state_dict().items()}

    def load_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """THE weight copy: online and target ← `state_dict`, then a fresh optimizer.

        The copy is in place, and the optimizer is dropped, to be re-created over
        `self.online.parameters()` when next used, so it owns exactly the model's parameters
        and carries no Adam moments estimated for the weights that were overwritten. The LR
        schedule position (`self.updates`) is kept.
        """
        self.online.load_state_dict(state_dict)
        hard_update(self.target, self.online)
        self._optimizer = None
        self._refresh_actor()

    def _load_into_new_modules(self, state_dict: dict[str, torch.Tensor]) -> None:
        # FAULT stale-optimizer: a fresh module receives the weights, but the optimizer is
        # not re-created, so it keeps stepping the replaced module's parameters (the one it
        # already had, made here if it was not yet).
        _ = self.optimizer
        fresh = self.build_network().to(self.device)
        fresh.load_state_dict(state_dict)
        self.online = fresh
        hard_update(self.target, self.online)
        self._refresh_actor()

    def optimizer_params(self) -> list[torch.Tensor]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]


def algo_of(config: QLearningConfig) -> str:
    """The registered algorithm a Q-learning config trains."""
    return "iqn" if isinstance(config, IQNConfig) else "dqn"


def make_agent(
    config: QLearningConfig, env: gym.Env, device: torch.device,
    agent_cls: type[QAgent] | None = None,
) -> QAgent:
    """Build the agent for `env` (discrete actions only). `agent_cls` defaults to the
    class matching the config (DQNConfig → DQNAgent, IQNConfig → IQNAgent)."""
    if not is_discrete(env):
        raise ValueError(f"DQN/IQN need a Discrete action space, got {env.action_space}")
    if agent_cls is None:  # each Q-learning trainer module names its agent class `Agent`
        agent_cls = trainer_module(algo_of(config)).Agent
    obs_shape = env.observation_space.shape
    if obs_shape is None:
        raise ValueError(f"observation space without a shape: {env.observation_space}")
    return agent_cls(config, tuple(obs_shape), int(env.action_space.n), device)


def evaluate_agent(agent: QAgent, config: QLearningConfig) -> EvalResult:
    """The greedy policy through `rlbench.evaluation.evaluate` (fixed eval seed)."""
    return evaluate(agent.greedy_action, config.env_id, config.eval_episodes,
                    seed=config.seed + EVAL_SEED_OFFSET, faults=config.faults)


