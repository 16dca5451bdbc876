"""SAC's exploration noise: a fresh draw every env step, from its own key stream.

Law: with the actor fixed (no update in between) and the observation fixed (``probe:1``
always shows 0), consecutive exploration actions are independent draws of the
tanh-Gaussian policy, so no two are equal; the evaluation action tanh(mean) is one
deterministic value. A key that never advances makes every exploration action the same.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")  # needs the `jax` extra: skipped where it is not installed

import jax

from rlbench.config import SACConfig
from rlbench.trainers.sac_jax import SAC

LEARNING_STARTS, STEPS = 5, 16
CONFIG = SACConfig(
    env_id="probe:1-continuous", hidden_sizes=(8, 8), batch_size=4, buffer_size=100,
    learning_starts=LEARNING_STARTS,
    # K larger than every update due in the window: the actor never changes while we watch.
    chunk_updates=64, total_steps=LEARNING_STARTS + STEPS, eval_interval=LEARNING_STARTS + STEPS,
    eval_episodes=1, seed=0,
)


def test_sac_exploration_draws_fresh_noise_every_step() -> None:
    sac = SAC(CONFIG)
    actions: list[np.ndarray] = []
    step = sac.env.step

    def recording_step(action):
        actions.append(np.array(action, np.float64).reshape(-1))
        return step(action)

    sac.env.step = recording_step
    sac.advance(LEARNING_STARTS + STEPS)
    assert sac.updates == 0, "an update ran: the actor changed inside the window"
    policy_actions = np.stack(actions[LEARNING_STARTS:])[:, 0]  # same actor, same obs 0
    distinct = len(np.unique(policy_actions))
    assert distinct == STEPS, (
        f"only {distinct} distinct exploration actions in {STEPS} steps with the same actor and "
        f"observation: the exploration noise key is not advancing between steps "
        f"({np.round(policy_actions, 4).tolist()})")
    # The evaluation action is deterministic, and differs from the noisy draws.
    policy = sac.policy()
    greedy = {float(np.asarray(policy(np.zeros(1, np.float32))).reshape(-1)[0]) for _ in range(3)}
    assert len(greedy) == 1


def test_sac_exploration_and_update_keys_are_separate_streams() -> None:
    """The acting key and the update key come from one split: reusing one key for both
    would correlate the exploration noise with the batches and actor noise of updates."""
    sac = SAC(CONFIG)
    act, update = jax.random.key_data(sac.act_key), jax.random.key_data(sac.update_key)
    assert not np.array_equal(np.asarray(act), np.asarray(update)), (
        "acting and updates share one RNG key")


def test_sac_greedy_action_is_the_squashed_noise_free_sample() -> None:
    """The evaluation action tanh(mean) is the policy's sample with zero noise: squashed
    into the actor's box [-1, 1] exactly like every exploration action (an unsquashed mean
    would act outside the box the env mapping `_to_env` assumes)."""
    import jax.numpy as jnp
    from flax import nnx

    from rlbench.trainers.sac_nets import Actor, tanh_gaussian_sample

    actor = Actor(3, 2, (16,), nnx.Rngs(0))
    last = actor.net.layers[-1]
    last.kernel[...] = last.kernel[...] * 50.0  # large means: far outside [-1, 1] unsquashed
    obs = jnp.asarray(np.random.default_rng(0).standard_normal((8, 3)), jnp.float32)
    mean, log_std = actor(obs)
    assert float(jnp.abs(mean).max()) > 2.0  # guard: the squash matters on these inputs
    want, _ = tanh_gaussian_sample(mean, log_std, jnp.zeros_like(mean))
    got = np.asarray(actor.greedy(obs))
    assert np.abs(got).max() <= 1.0, "the greedy action is not squashed into [-1, 1]"
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-6, atol=1e-6,
                               err_msg="greedy action != tanh(mean), the noise-free sample")
