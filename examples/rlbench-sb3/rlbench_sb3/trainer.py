"""`SB3Trainer`: one Stable-Baselines3 (or sbx) off-policy model behind `rlbench.api.Trainer`.

The model is SB3's own, built from the config and trained only through its public
``learn``; this module adds no learning logic. SB3 behaviour is kept as it is (time limits
included: SB3's replay buffer bootstraps through ``truncated`` by default), so whatever
`rlbench check` finds is SB3's.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from rlbench.envs import make as make_env
from rlbench_sb3.configs import RLBENCH_FIELDS

ValueFn = Callable[[np.ndarray], np.ndarray]


class _WholeRunSchedule(BaseCallback):
    """Keeps SB3's schedules (epsilon, learning rate) on the whole run's clock.

    SB3 measures schedule progress against the end of the current ``learn`` call, so the
    sliced ``learn(n, reset_num_timesteps=False)`` calls of `SB3Trainer.advance` would each
    replay the exploration decay over their own slice. Pointing the model's end at
    ``total_steps`` makes any slicing behave like one ``learn(total_steps)``.
    """

    def __init__(self, total_steps: int) -> None:
        super().__init__()
        self.total_steps = total_steps

    def _on_training_start(self) -> None:
        # After _setup_learn set _total_timesteps to this call's end; SB3 reads it only for
        # progress_remaining, the loop itself stops at the call's own end.
        self.model._total_timesteps = max(self.model._total_timesteps, self.total_steps)

    def _on_step(self) -> bool:
        return True


class SB3Trainer:
    """A built SB3/sbx model driven through rlbench's resumable `advance`."""

    def __init__(self, model: OffPolicyAlgorithm, total_steps: int, values: ValueFn) -> None:
        self.model = model
        self._values = values
        self._schedule = _WholeRunSchedule(total_steps)
        # A logger of our own, set once: SB3 then neither replaces it on every learn() call
        # nor prints, and with log_interval=None it is never dumped, so name_to_value keeps
        # the latest losses for metrics().
        model.set_logger(Logger(folder=None, output_formats=[]))

    @property
    def env_steps(self) -> int:
        return int(self.model.num_timesteps)

    def advance(self, steps: int) -> None:
        """``learn(steps, reset_num_timesteps=False)``: SB3 keeps its env, episode and step
        counter between calls. SB3 collects ``train_freq`` steps per round, so a call may
        overshoot by up to ``train_freq - 1`` steps (`env_steps` reports what was done)."""
        if steps > 0:
            self.model.learn(steps, callback=self._schedule, log_interval=None,
                             reset_num_timesteps=False, progress_bar=False)

    def policy(self) -> Callable[[np.ndarray], Any]:
        """SB3's deterministic ``predict`` (greedy Q / the actor's mean, in env units)."""
        model, discrete = self.model, isinstance(self.model.action_space, spaces.Discrete)

        def act(obs: np.ndarray) -> Any:
            action, _ = model.predict(obs, deterministic=True)
            return int(action) if discrete else action

        return act

    def values(self, obs: np.ndarray) -> np.ndarray:
        """DQN: Q(obs, a) for every action; SAC: min of the twin critics at the actor's
        deterministic action."""
        return np.asarray(self._values(obs), dtype=np.float64)

    def metrics(self) -> dict[str, float]:
        """SB3's latest ``train/*`` logger values (losses, learning rate, entropy
        coefficient), update and episode counts, recent episode return, epsilon."""
        model = self.model
        out = {"updates": float(model._n_updates), "episodes": float(model._episode_num)}
        for key, value in model.logger.name_to_value.items():
            if key.startswith("train/") and key != "train/n_updates":
                try:
                    out[key.removeprefix("train/")] = float(value)
                except (TypeError, ValueError):
                    pass  # non-numeric records stay in SB3's logger
        if model.ep_info_buffer:  # Monitor's episodes, SB3's window (the last 100)
            out["episode_return"] = float(np.mean([info["r"] for info in model.ep_info_buffer]))
        if hasattr(model, "exploration_rate"):
            out["epsilon"] = float(model.exploration_rate)
        return out

    def close(self) -> None:
        self.model.env.close()


# -- building ----------------------------------------------------------------------------------
def _number_or_text(value: Any) -> Any:
    """SB3 takes "auto"/"auto_0.1" or a float for ent_coef/target_entropy; the CLI gives text."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def _kwargs(config: Any) -> dict[str, Any]:
    """The constructor arguments: every non-rlbench field under its own (SB3) name."""
    kwargs = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
              if f.name not in RLBENCH_FIELDS | {"net_arch"}}
    for name in ("ent_coef", "target_entropy"):
        if name in kwargs:
            kwargs[name] = _number_or_text(kwargs[name])
    kwargs["policy_kwargs"] = {"net_arch": [int(width) for width in config.net_arch]}
    return kwargs


def build(library: str, algo: str, config: Any,
          values: Callable[[OffPolicyAlgorithm], ValueFn]) -> SB3Trainer:
    """``<library>.<algo>("MlpPolicy", rlbench env, seed, **config)`` as an `SB3Trainer`."""
    try:
        module = importlib.import_module(library)
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(f"{library} is not installed ({exc}); install it with: "
                                  "pip install 'rlbench-sb3[sbx]'") from exc
    if config.torch_threads > 0:
        import torch

        torch.set_num_threads(config.torch_threads)
    env = make_env(config.env_id, seed=config.seed)
    # SB3 wraps the env in Monitor + DummyVecEnv itself, as it does for its own users.
    model = getattr(module, algo)("MlpPolicy", env, seed=config.seed, verbose=0, **_kwargs(config))
    return SB3Trainer(model, config.total_steps, values(model))


# -- value read-outs, one per library and algorithm ------------------------------------------
def sb3_dqn_values(model: OffPolicyAlgorithm) -> ValueFn:
    import torch

    def values(obs: np.ndarray) -> np.ndarray:
        obs_t, _ = model.policy.obs_to_tensor(np.asarray(obs))
        with torch.no_grad():
            return model.q_net(obs_t)[0].cpu().numpy()

    return values


def sb3_sac_values(model: OffPolicyAlgorithm) -> ValueFn:
    import torch

    def values(obs: np.ndarray) -> np.ndarray:
        obs_t, _ = model.policy.obs_to_tensor(np.asarray(obs))
        with torch.no_grad():
            # The actor's deterministic action is tanh(mean) in [-1, 1]: the scale the critics
            # were trained in (SB3 stores scale_action(a) in the buffer), not the env's units.
            action = model.actor(obs_t, deterministic=True)
            q = torch.cat(model.critic(obs_t, action), dim=1)
        return q.min(dim=1).values.cpu().numpy()

    return values


def sbx_dqn_values(model: OffPolicyAlgorithm) -> ValueFn:
    def values(obs: np.ndarray) -> np.ndarray:
        obs_b, _ = model.policy.prepare_obs(np.asarray(obs))
        state = model.policy.qf_state
        return np.asarray(state.apply_fn(state.params, obs_b))[0]

    return values


def sbx_sac_values(model: OffPolicyAlgorithm) -> ValueFn:
    def values(obs: np.ndarray) -> np.ndarray:
        obs_b, _ = model.policy.prepare_obs(np.asarray(obs))
        actor, critic = model.policy.actor_state, model.policy.qf_state
        action = actor.apply_fn(actor.params, obs_b).mode()  # tanh(mean), in [-1, 1] like SB3
        q = np.asarray(critic.apply_fn(critic.params, obs_b, action))  # [n_critics, 1, 1]
        return q.min(axis=0).reshape(1)

    return values
