"""SAC building blocks in Flax NNX, plus the pure maths the property tests check directly:
the tanh-Gaussian log-probability, the Polyak update, the temperature loss and the TD target.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

# CleanRL / SpinningUp bounds: a floor keeps the Gaussian from collapsing to a point (log-prob
# blow-up), a ceiling keeps the pre-tanh spread from saturating tanh everywhere.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


class MLP(nnx.Module):
    """Dense ReLU layers: in_dim → hidden… → out_dim (no activation on the output)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, rngs: nnx.Rngs) -> None:
        sizes = [in_dim, *hidden, out_dim]
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


class Actor(nnx.Module):
    """Tanh-Gaussian policy over actions in [-1, 1]^A (trainers map that box onto the env's)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], rngs: nnx.Rngs) -> None:
        self.net = MLP(obs_dim, hidden, 2 * action_dim, rngs)
        self.action_dim = action_dim

    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Mean and log-std of the pre-tanh Gaussian, each [..., A]."""
        mean, raw = jnp.split(self.net(obs), 2, axis=-1)
        # Smooth squash into [LOG_STD_MIN, LOG_STD_MAX] (CleanRL): no dead gradient at a clip.
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)
        return mean, log_std

    def sample(self, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A reparameterised action in (-1, 1)^A and its log-probability [...]."""
        mean, log_std = self(obs)
        noise = jax.random.normal(key, mean.shape, mean.dtype)
        return tanh_gaussian_sample(mean, log_std, noise)

    def greedy(self, obs: jax.Array) -> jax.Array:
        """The deterministic (evaluation) action tanh(mean)."""
        return jnp.tanh(self(obs)[0])


class TwinQ(nnx.Module):
    """Two independent Q(s, a) networks; their minimum fights overestimation (TD3/SAC)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], rngs: nnx.Rngs) -> None:
        self.q1 = MLP(obs_dim + action_dim, hidden, 1, rngs)
        self.q2 = MLP(obs_dim + action_dim, hidden, 1, rngs)

    def __call__(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = jnp.concatenate([obs, action], axis=-1)
        return self.q1(x)[..., 0], self.q2(x)[..., 0]


class Temperature(nnx.Module):
    """The entropy temperature alpha, learned in log space (stays positive)."""

    def __init__(self, init_alpha: float) -> None:
        self.log_alpha = nnx.Param(jnp.log(jnp.asarray(init_alpha, jnp.float32)))

    def __call__(self) -> jax.Array:
        return jnp.exp(self.log_alpha[...])


def tanh_gaussian_sample(
    mean: jax.Array, log_std: jax.Array, noise: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """a = tanh(mean + std * noise) and log p(a), with the change-of-variables correction.

    log p(a) = Σ_i [log N(u_i; mean_i, std_i) − log(1 − tanh(u_i)²)],  u = mean + std·noise.
    The correction uses log(1 − tanh(u)²) = 2(log 2 − u − softplus(−2u)), which stays finite
    where tanh(u) rounds to ±1 (the naive form gives log 0 = −inf there).
    """
    u = mean + jnp.exp(log_std) * noise
    gaussian = -0.5 * noise**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    return jnp.tanh(u), jnp.sum(gaussian - log_det, axis=-1)


def polyak(target: nnx.State, online: nnx.State, tau: float) -> nnx.State:
    """(1 − tau)·target + tau·online, leaf by leaf."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """SAC's alpha objective: −log α · (log π(a|s) + H̄), averaged.

    Its gradient raises alpha when the policy's entropy (−log π) is below the target H̄ and
    lowers it when above. `log_prob` is treated as a constant (the caller stops gradients).
    """
    return -jnp.mean(log_alpha * (log_prob + target_entropy))


def td_target(
    reward: jax.Array,
    terminated: jax.Array,
    next_q_min: jax.Array,
    next_log_prob: jax.Array,
    alpha: jax.Array,
    gamma: float,
    reward_scale: float,
) -> jax.Array:
    """Soft Bellman target r·scale + γ·(1 − terminated)·(min Q'(s', a') − α·log π(a'|s')).

    The one place where `reward_scale` touches the reward. Only `terminated` stops the
    bootstrap: a time-limit truncation is not a terminal state.
    """
    soft_value = next_q_min - alpha * next_log_prob
    return reward * reward_scale + gamma * (1.0 - terminated.astype(reward.dtype)) * soft_value
