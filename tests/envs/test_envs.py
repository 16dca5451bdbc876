"""env ids, the dm_control adapter (truncation, action mapping, seeding) and probe dynamics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from rlbench.envs import is_discrete, list_envs, list_probe_ids, make
from rlbench.envs.dmc import DMCEnv


@pytest.mark.parametrize("bad", ["NoSuchEnv-v0", "dmc:cartpole", "dmc:nosuch-task", "probe:6", "probe:1-cont", ""])
def test_make_unknown_id_raises_value_error_naming_families(bad: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        make(bad)


def test_make_unknown_id_message_lists_every_family() -> None:
    with pytest.raises(ValueError) as info:
        make("NoSuchEnv-v0")
    for family in ("gymnasium", "dmc:", "probe:"):
        assert family in str(info.value)


def test_make_gymnasium_id_with_seed_reproduces_first_episode() -> None:
    def rollout(seed: int) -> list[np.ndarray]:
        env = make("CartPole-v1", seed=seed)
        obs, _ = env.reset()
        out = [obs]
        for _ in range(8):  # CartPole cannot fall within 8 steps from its start state
            obs, *_ = env.step(env.action_space.sample())
            out.append(obs)
        return out

    a, b, c = rollout(3), rollout(3), rollout(4)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))
    assert not np.array_equal(np.stack(a), np.stack(c))


def test_list_envs_covers_every_family_and_all_probes() -> None:
    rows = list_envs()
    assert {family for _, family, _ in rows} == {"gymnasium", "dmc", "probe"}
    ids = [env_id for env_id, _, _ in rows]
    for n in range(1, 6):
        assert f"probe:{n}" in ids and f"probe:{n}-continuous" in ids
    for env_id in ids:
        make(env_id).close()


# -- dm_control adapter ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def swingup() -> DMCEnv:
    return make("dmc:cartpole-swingup", seed=0).unwrapped


def test_dmc_spaces_are_flat_float32_and_unit_box(swingup: DMCEnv) -> None:
    obs, _ = swingup.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == swingup.observation_space.shape == (5,)
    assert swingup.action_space.shape == (1,)
    assert np.all(swingup.action_space.low == -1) and np.all(swingup.action_space.high == 1)


def test_dmc_time_limit_is_truncation_not_termination(swingup: DMCEnv) -> None:
    swingup.reset(seed=1)
    flags = [swingup.step(np.zeros(1))[2:4] for _ in range(1000)]
    assert all(flags[i] == (False, False) for i in range(999))
    assert flags[-1] == (False, True)  # terminated=False, truncated=True at step 1000
    # Stepping past the end is the caller's bug; dm_control then starts its next episode
    # with reward None, which the adapter reports as 0 rather than crashing.
    _, reward, terminated, truncated, _ = swingup.step(np.zeros(1))
    assert (reward, terminated, truncated) == (0.0, False, False)


def test_dmc_steps_are_the_raw_tasks_steps_with_the_action_mapped() -> None:
    # The adapter's whole contract in one rollout: observations are dm_control's dict
    # flattened in key order, rewards are dm_control's rewards, actions in [-1, 1] (clipped
    # first) land affinely on the action spec. The raw task runs beside it, same seed.
    from dm_control import suite

    env = DMCEnv("cartpole", "swingup")
    raw = suite.load("cartpole", "swingup", task_kwargs={"random": 3})
    low, high = raw.action_spec().minimum, raw.action_spec().maximum

    def flat(ts) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in ts.observation.values()])

    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, flat(raw.reset()))
    rng = np.random.default_rng(0)
    rewards = []
    for _ in range(200):
        a = rng.uniform(-1.5, 1.5, size=1)
        obs, reward, terminated, truncated, _ = env.step(a)
        ts = raw.step(low + (np.clip(a, -1.0, 1.0) + 1.0) / 2.0 * (high - low))
        np.testing.assert_array_equal(obs, flat(ts))
        assert reward == ts.reward and (terminated, truncated) == (False, False)
        rewards.append(reward)
    assert max(rewards) > 0.0  # swingup pays for the pole's height: not all zeros


def test_dmc_observation_space_counts_scalar_entries_once() -> None:
    # walker's "height" is a scalar (shape ()) beside vector entries: it is one number.
    env = make("dmc:walker-stand")
    obs, _ = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape == (24,)


def test_dmc_reset_with_a_seed_restarts_that_seeds_episode_whatever_ran_before() -> None:
    def rollout(env: DMCEnv, seed: int | None) -> np.ndarray:
        out = [env.reset(seed=seed)[0]]
        out += [env.step(np.full(1, 0.5))[0] for _ in range(20)]
        return np.stack(out)

    used = DMCEnv("cartpole", "swingup", seed=1)
    rollout(used, None)
    np.testing.assert_array_equal(rollout(used, 7), rollout(DMCEnv("cartpole", "swingup"), 7))
    # Without a seed, reset continues the task's random stream: a new start state.
    assert not np.array_equal(rollout(used, None)[0], rollout(used, None)[0])


def test_dmc_action_mapping_is_affine_onto_the_action_spec() -> None:
    # Suite tasks all use [-1, 1]; widen the bounds to see the affine map is really applied.
    env = make("dmc:cartpole-swingup").unwrapped
    env._low, env._high = np.array([-2.0]), np.array([6.0])
    np.testing.assert_allclose(env.map_action([-1.0]), [-2.0])
    np.testing.assert_allclose(env.map_action([0.0]), [2.0])
    np.testing.assert_allclose(env.map_action([1.0]), [6.0])
    np.testing.assert_allclose(env.map_action([5.0]), [6.0])  # clipped first
    np.testing.assert_allclose(env.map_action([-5.0]), [-2.0])
    with pytest.raises(ValueError, match="non-finite"):
        env.map_action([np.nan])


def test_dmc_action_mapping_matches_the_real_spec(swingup: DMCEnv) -> None:
    spec = swingup._env.action_spec()
    np.testing.assert_allclose(swingup.map_action(-np.ones(1)), spec.minimum)
    np.testing.assert_allclose(swingup.map_action(np.ones(1)), spec.maximum)


def test_dmc_same_seed_reproduces_episode_exactly() -> None:
    def rollout(seed: int) -> np.ndarray:
        env = make("dmc:cartpole-swingup", seed=seed)
        rng = np.random.default_rng(0)
        obs, _ = env.reset(seed=seed)
        out = [obs]
        for _ in range(50):
            obs, reward, *_ = env.step(rng.uniform(-1, 1, size=1))
            out.append(np.append(obs, reward))
        return np.concatenate(out)

    np.testing.assert_array_equal(rollout(7), rollout(7))
    assert not np.array_equal(rollout(7), rollout(8))


def test_dmc_seed_given_to_make_seeds_the_first_reset() -> None:
    a, _ = make("dmc:cartpole-swingup", seed=5).reset()
    b, _ = make("dmc:cartpole-swingup", seed=5).reset()
    c, _ = make("dmc:cartpole-swingup", seed=6).reset()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


# -- probe environments ---------------------------------------------------------------------
def _episode(env: gym.Env, actions: list, seed: int = 0) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    steps = []
    for a in actions:
        nxt, r, term, trunc, _ = env.step(a)
        steps.append((float(obs[0]), r, term, trunc))
        obs = nxt
        if term or trunc:
            break
    return steps


@pytest.mark.parametrize("variant", ["", "-continuous"])
def test_probe1_constant_reward_one_step(variant: str) -> None:
    env = make(f"probe:1{variant}")
    action = np.zeros(1) if variant else 0
    assert _episode(env, [action, action]) == [(0.0, 1.0, True, False)]


@pytest.mark.parametrize("variant", ["", "-continuous"])
def test_probe2_reward_equals_observation(variant: str) -> None:
    env = make(f"probe:2{variant}")
    seen = set()
    for seed in range(20):
        [(obs, r, term, _)] = _episode(env, [np.zeros(1) if variant else 0], seed)
        assert r == obs and obs in (-1.0, 1.0) and term
        seen.add(obs)
    assert seen == {-1.0, 1.0}


@pytest.mark.parametrize("variant", ["", "-continuous"])
def test_probe3_two_steps_reward_at_the_end(variant: str) -> None:
    env = make(f"probe:3{variant}")
    a = np.zeros(1) if variant else 0
    assert _episode(env, [a, a, a]) == [(0.0, 0.0, False, False), (1.0, 1.0, True, False)]


def test_probe4_discrete_reward_depends_on_action() -> None:
    env = make("probe:4")
    assert env.action_space.n == 2
    assert _episode(env, [0])[0][1] == -1.0 and _episode(env, [1])[0][1] == 1.0


def test_probe4_continuous_reward_is_the_clipped_action() -> None:
    env = make("probe:4-continuous")
    for a in (-1.0, -0.3, 0.0, 0.7, 1.0):
        assert _episode(env, [np.array([a])])[0][1] == pytest.approx(a)
    assert _episode(env, [np.array([3.0])])[0][1] == 1.0
    assert _episode(env, [np.array([-3.0])])[0][1] == -1.0


def test_probe5_reward_depends_on_obs_and_action() -> None:
    env, cont = make("probe:5"), make("probe:5-continuous")
    for seed in range(10):
        obs = _episode(env, [0], seed)[0][0]
        match = 1 if obs > 0 else 0
        assert _episode(env, [match], seed)[0][1] == 1.0
        assert _episode(env, [1 - match], seed)[0][1] == -1.0
        assert _episode(cont, [np.array([0.5])], seed)[0][1] == pytest.approx(0.5 * obs)


def test_probe_action_spaces_match_their_variant() -> None:
    for n in range(1, 6):
        assert is_discrete(make(f"probe:{n}"))
        assert not is_discrete(make(f"probe:{n}-continuous"))


def test_probe_rejects_invalid_actions() -> None:
    with pytest.raises(ValueError):
        make("probe:4").step(2)
    with pytest.raises(ValueError):
        make("probe:4-continuous").step(np.array([np.nan]))


# Per probe (without "-continuous"): the observations its docstring lists, and what the
# observation after a truncation is (only the timelimit probes truncate).
PROBE_OBSERVATIONS = {
    "1": {0.0}, "2": {-1.0, 1.0}, "3": {0.0, 1.0}, "4": {0.0}, "5": {-1.0, 1.0},
    "timelimit": {0.0}, "timelimit-choice": {0.0, 1.0}, "timelimit-eval": {0.0},
    "nan-reward": {0.0},
}
OBS_AFTER_TRUNCATION = {"timelimit": 0.0, "timelimit-choice": 1.0, "timelimit-eval": 0.0}


@pytest.mark.parametrize("probe_id", [p.removeprefix("probe:") for p in list_probe_ids()])
def test_probe_observations_are_documented_terminal_ones_are_0_and_only_time_limits_truncate(
    probe_id: str,
) -> None:
    name = probe_id.removesuffix("-continuous")
    env = make(f"probe:{probe_id}")
    for seed in range(10):
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        for _ in range(25):
            assert float(obs[0]) in PROBE_OBSERVATIONS[name], f"observation {obs} of probe:{probe_id}"
            obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated:
                assert not truncated and float(obs[0]) == 0.0, f"terminal step of probe:{probe_id}"
                break
            if truncated:
                assert float(obs[0]) == OBS_AFTER_TRUNCATION.get(name), (
                    f"probe:{probe_id} truncated (only the timelimit probes may), next obs {obs}")
                break
        else:
            pytest.fail(f"probe:{probe_id} ran 25 steps without ending an episode")
