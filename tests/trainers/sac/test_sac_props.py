"""Laws of SAC's maths (rlbench.trainers.sac_nets), checked against independent references."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")  # needs the `jax` extra: skipped where it is not installed

import jax
import jax.numpy as jnp
import optax
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from rlbench.trainers.sac_nets import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    Actor,
    Temperature,
    polyak,
    tanh_gaussian_sample,
    td_target,
    temperature_loss,
)

pytestmark = pytest.mark.law

finite = st.floats(-3.0, 3.0, allow_nan=False, width=32)

# One compile per function for the whole module (hypothesis calls these many times).
_sample = jax.jit(tanh_gaussian_sample)
_polyak = jax.jit(polyak, static_argnums=2)


@given(
    target=st.lists(finite, min_size=1, max_size=8),
    online=st.lists(finite, min_size=1, max_size=8),
    tau=st.sampled_from([0.0, 0.005, 0.1, 0.5, 1.0]),
)
def test_polyak_is_the_exact_convex_combination(target, online, tau) -> None:
    n = min(len(target), len(online))
    t = {"w": jnp.asarray(target[:n], jnp.float32), "b": {"x": jnp.asarray(online[:1], jnp.float32)}}
    o = {"w": jnp.asarray(online[:n], jnp.float32), "b": {"x": jnp.asarray(target[:1], jnp.float32)}}
    out = polyak(t, o, tau)
    for got, tv, ov in zip(jax.tree.leaves(out), jax.tree.leaves(t), jax.tree.leaves(o)):
        expected = (1.0 - tau) * np.asarray(tv, np.float64) + tau * np.asarray(ov, np.float64)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-6)
    if tau == 0.0:  # the end points are the inputs themselves
        assert jax.tree.all(jax.tree.map(jnp.array_equal, out, t))
    if tau == 1.0:
        assert jax.tree.all(jax.tree.map(jnp.array_equal, out, o))


def _reference_log_density(a: float, mean: float, std: float) -> float:
    """log of d/da P(tanh(U) <= a), U ~ N(mean, std), by a central finite difference of the CDF.

    Independent of the formula under test: no Jacobian is written down, the density is
    differentiated numerically (float64) from the Gaussian CDF.
    """
    h = 1e-6 * (1.0 - abs(a))
    cdf = lambda x: stats.norm.cdf(np.arctanh(x), loc=mean, scale=std)  # noqa: E731
    return float(np.log((cdf(a + h) - cdf(a - h)) / (2.0 * h)))


@given(
    mean=st.floats(-2.0, 2.0),
    log_std=st.floats(-1.5, 0.5),
    noise=st.floats(-2.0, 2.0),
)
def test_tanh_gaussian_log_prob_matches_change_of_variables_reference(mean, log_std, noise) -> None:
    action, log_prob = _sample(
        jnp.float32([mean]), jnp.float32([log_std]), jnp.float32([noise])
    )
    a = float(action[0])
    u = mean + np.exp(log_std) * noise
    assert a == pytest.approx(np.tanh(u), abs=1e-5)
    if abs(a) > 0.999:  # finite differences lose precision at the saturated ends
        return
    expected = _reference_log_density(np.tanh(u), mean, float(np.exp(log_std)))
    assert float(log_prob) == pytest.approx(expected, abs=2e-3)


def test_tanh_gaussian_log_prob_sums_over_action_dims_and_stays_finite() -> None:
    mean = jnp.float32([[0.3, -1.0, 8.0]])  # 8.0: tanh saturates to 1.0 in float32
    log_std = jnp.float32([[-0.5, 0.0, -5.0]])
    noise = jnp.float32([[0.7, -0.2, 1.0]])
    _, joint = _sample(mean, log_std, noise)
    parts = [float(_sample(mean[:, i : i + 1], log_std[:, i : i + 1], noise[:, i : i + 1])[1][0])
             for i in range(3)]
    assert joint.shape == (1,) and float(joint[0]) == pytest.approx(sum(parts), rel=1e-5)
    assert np.isfinite(float(joint[0]))  # the naive log(1 - tanh²) would be -inf here


def test_actor_log_std_stays_in_bounds_and_samples_in_open_box() -> None:
    from flax import nnx

    actor = Actor(3, 2, (16,), nnx.Rngs(0))
    obs = jax.random.normal(jax.random.key(1), (64, 3)) * 100.0  # extreme inputs
    mean, log_std = actor(obs)
    assert mean.shape == (64, 2) and log_std.shape == (64, 2)
    assert float(log_std.min()) >= LOG_STD_MIN and float(log_std.max()) <= LOG_STD_MAX
    action, log_prob = actor.sample(obs, jax.random.key(2))
    assert float(jnp.abs(action).max()) <= 1.0 and log_prob.shape == (64,)
    assert np.all(np.isfinite(np.asarray(log_prob)))


@pytest.mark.parametrize("entropy_vs_target", ["above", "below"])
def test_temperature_loss_moves_alpha_toward_the_entropy_target(entropy_vs_target: str) -> None:
    """Entropy (−log π) above the target → alpha falls (less entropy bonus); below → rises."""
    from flax import nnx

    target_entropy = -1.0
    # Entropy = −mean(log_prob): 0.5 is above the target −1, −3 is below it.
    log_prob = jnp.full((32,), -0.5 if entropy_vs_target == "above" else 3.0)
    temperature = Temperature(0.2)
    optimizer = nnx.Optimizer(temperature, optax.adam(1e-2), wrt=nnx.Param)
    before = float(temperature())
    grads = nnx.grad(lambda t: temperature_loss(t.log_alpha[...], log_prob, target_entropy))(temperature)
    optimizer.update(temperature, grads)
    after = float(temperature())
    assert (after < before) if entropy_vs_target == "above" else (after > before)
    # At the target exactly, the loss is flat in log alpha.
    g = jax.grad(temperature_loss)(jnp.float32(0.3), jnp.full((4,), 1.0), -1.0)
    assert float(g) == 0.0


@given(
    reward=st.floats(-10.0, 10.0, width=32),
    scale=st.sampled_from([0.1, 1.0, 2.5]),
    terminated=st.booleans(),
    next_q=st.floats(-5.0, 5.0, width=32),
    next_log_prob=st.floats(-3.0, 3.0, width=32),
)
def test_td_target_uses_reward_times_scale_exactly_once(
    reward, scale, terminated, next_q, next_log_prob
) -> None:
    alpha, gamma = 0.2, 0.99
    args = (jnp.float32([terminated]), jnp.float32([next_q]), jnp.float32([next_log_prob]),
            jnp.float32(alpha), gamma, scale)
    got = float(td_target(jnp.float32([reward]), *args)[0])
    bootstrap = 0.0 if terminated else gamma * (next_q - alpha * next_log_prob)
    assert got == pytest.approx(reward * scale + bootstrap, rel=1e-5, abs=1e-4)
    # Linear in the reward with slope exactly `scale` (a second scaling changes the slope).
    shifted = float(td_target(jnp.float32([reward + 1.0]), *args)[0])
    assert shifted - got == pytest.approx(scale, rel=1e-4, abs=1e-4)


def test_td_target_bootstraps_through_truncation_not_termination() -> None:
    reward = jnp.float32([1.0, 1.0])
    terminated = jnp.array([True, False])  # the second row is a time-limit truncation
    out = td_target(reward, terminated, jnp.float32([5.0, 5.0]), jnp.float32([0.0, 0.0]),
                    jnp.float32(0.1), 0.9, 1.0)
    np.testing.assert_allclose(np.asarray(out), [1.0, 1.0 + 0.9 * 5.0], rtol=1e-6)
