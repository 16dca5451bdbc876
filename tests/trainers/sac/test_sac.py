"""The SAC trainer's loop: write-back, update counting, reward scaling, K = 1 equivalence,
determinism, buffer diagnostics, config validation, and the run's records (when it logs
and evaluates, what its metrics and value report say, that evaluation is seeded apart).

Every trainer here uses one tiny configuration so the jitted functions (keyed on a static,
hashable learner) compile once for the whole module.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")  # needs the `jax` extra: skipped where it is not installed

import jax
import jax.numpy as jnp
from flax import nnx

from rlbench.buffers import JaxReplayBuffer
from rlbench.config import SACConfig
from rlbench.envs import make
from rlbench.trainers import config_class
from rlbench.trainers.sac_jax import SAC, act, update_chunk, updates_due
from rlbench.types import Batch

LEARNING_STARTS = 40
K = 4
TINY = SACConfig(
    env_id="Pendulum-v1", hidden_sizes=(32, 32), batch_size=16, buffer_size=500,
    learning_starts=LEARNING_STARTS, chunk_updates=K, total_steps=200, eval_interval=200,
    eval_episodes=1, log_interval=100,
)
PROBE_OBS = np.linspace(-1.0, 1.0, 8 * 3, dtype=np.float32).reshape(8, 3)


def _greedy_outputs(policy) -> np.ndarray:
    return np.stack([policy(o) for o in PROBE_OBS])


def _scanned_actor(sac: SAC):
    """The actor as held in the learner's scanned state (not the modules)."""
    model, _ = nnx.merge(sac.graphdef, sac.state)
    return model.actor


def test_sac_is_registered_with_its_config() -> None:
    assert config_class("sac") is SACConfig
    assert SACConfig().env_id == "dmc:cartpole-swingup" and SACConfig().reward_scale == 1.0


@pytest.mark.detects("stale-eval-actor")
def test_sac_write_back_acting_and_eval_use_the_scanned_actor() -> None:
    sac = SAC(TINY)
    sac.advance(LEARNING_STARTS + K - 2)  # K - 1 updates due: no chunk has run yet
    assert sac.updates == 0
    before = _greedy_outputs(sac.policy())
    sac.advance(1)  # the K-th due update triggers the first chunk
    assert sac.updates == K
    after = _greedy_outputs(sac.policy())
    assert not np.allclose(after, before, atol=1e-6), "evaluation still uses the pre-scan actor"
    scanned = _scanned_actor(sac)
    expected = np.stack([sac._to_env(np.asarray(scanned.greedy(jnp.asarray(o)))) for o in PROBE_OBS])
    np.testing.assert_allclose(after, expected, rtol=1e-6, atol=1e-6)
    # Acting reads the same parameters as evaluation.
    for acting, scanned_leaf in zip(sac.actor_leaves, jax.tree.leaves(nnx.state(scanned))):
        np.testing.assert_array_equal(np.asarray(acting), np.asarray(scanned_leaf))


@pytest.mark.detects("sample-before-warmup")
@pytest.mark.parametrize("utd_ratio", [1.0, 0.5])
def test_sac_update_count_follows_the_schedule(utd_ratio: float) -> None:
    config = TINY.replace(utd_ratio=utd_ratio)
    sac = SAC(config)
    counted = {}
    for t in (1, LEARNING_STARTS - 1, LEARNING_STARTS, LEARNING_STARTS + 6, LEARNING_STARTS + 21):
        sac.advance(t - sac.env_steps)
        counted[t] = sac.updates
        # The optimizers' own step counters agree with the loop's count.
        _, opt = nnx.merge(sac.graphdef, sac.state)
        assert int(opt.critic.step[...]) == int(opt.actor.step[...]) == sac.updates
    # Written out by hand: floor(r·(t − learning_starts + 1)) due, run in whole chunks of K.
    if utd_ratio == 1.0:
        expected = {1: 0, 39: 0, 40: 0, 46: 4, 61: 20}
    else:
        expected = {1: 0, 39: 0, 40: 0, 46: 0, 61: 8}
    assert counted == expected


def test_updates_due_starts_at_learning_starts() -> None:
    assert [updates_due(t, 10, 1.0) for t in (0, 9, 10, 11, 20)] == [0, 0, 1, 2, 11]
    assert [updates_due(t, 10, 2.0) for t in (9, 10, 11)] == [0, 2, 4]


def _critic_target_fn(sac: SAC):
    @jax.jit
    def target(state, batch, key):
        model, _ = nnx.merge(sac.graphdef, state)
        return sac.learner.critic_target(model, batch, key)

    return target


@pytest.mark.detects("reward-scale-mismatch")
@pytest.mark.parametrize("reward_scale", [1.0, 3.0])
def test_sac_critic_target_scales_the_raw_reward_exactly_once(reward_scale: float) -> None:
    sac = SAC(TINY.replace(reward_scale=reward_scale))
    rng = np.random.default_rng(0)
    batch = Batch(
        obs=rng.normal(size=(16, 3)).astype(np.float32),
        action=rng.uniform(-1, 1, (16, 1)).astype(np.float32),
        reward=rng.normal(size=16).astype(np.float32),
        next_obs=rng.normal(size=(16, 3)).astype(np.float32),
        terminated=np.arange(16) % 2 == 0,
        truncated=np.zeros(16, bool),
    )
    target = _critic_target_fn(sac)
    key = jax.random.key(3)
    base = np.asarray(target(sac.state, batch, key))
    shifted = np.asarray(target(sac.state, batch._replace(reward=batch.reward + 1.0), key))
    # Same networks, same noise: the target moves by exactly reward_scale per unit of reward.
    np.testing.assert_allclose(shifted - base, reward_scale, rtol=1e-5)
    # Terminal rows carry no bootstrap: their target is the scaled raw reward itself.
    np.testing.assert_allclose(base[::2], batch.reward[::2] * reward_scale, rtol=1e-6)


@pytest.mark.detects("buffer-drops-writes")
def test_sac_buffer_holds_raw_transitions_and_logs_diagnostics() -> None:
    sac = SAC(TINY)
    sac.advance(LEARNING_STARTS + 10)
    metrics = sac.train_metrics()
    stats = metrics["buffer"]
    assert stats["size"] == stats["total_writes"] == LEARNING_STARTS + 10
    assert stats["zero_obs_fraction"] == 0.0  # Pendulum observations are never all zero
    # Pendulum rewards are in [-16.3, 0]: stored raw, not pre-scaled.
    assert -16.3 <= stats["reward_min"] < -1.0 and stats["reward_max"] <= 0.0
    assert {"q_loss", "pi_loss", "alpha", "entropy", "updates"} <= metrics.keys()


def test_sac_one_update_chunks_reproduce_the_classic_loop_exactly() -> None:
    """K = 1: the chunked, staged, scanned loop equals a plain CleanRL-style loop
    (act, step, add, sample, one update) built from the same parts."""
    config = TINY.replace(chunk_updates=1)
    steps = LEARNING_STARTS + 12
    sac = SAC(config)
    sac.advance(steps)

    ref = SAC(config)  # only for its initial networks, keys and pure functions
    graphdef, state, learner = ref.graphdef, ref.state, ref.learner
    buffer = JaxReplayBuffer(config.buffer_size, (3,), (1,))
    buffer_state = buffer.init()
    env = make(config.env_id, seed=config.seed)
    obs, _ = env.reset(seed=config.seed)
    rng = np.random.default_rng(config.seed)

    @jax.jit
    def one_update(state, buffer_state, key):
        model, opt = nnx.merge(graphdef, state)
        sample_key, step_key = jax.random.split(key)
        learner.update_step(model, opt, buffer.sample(buffer_state, config.batch_size, sample_key), step_key)
        return nnx.state((model, opt))

    n_updates = 0
    for t in range(steps):
        if t < config.learning_starts:
            action = rng.uniform(-1.0, 1.0, 1).astype(np.float32)
        else:
            model, _ = nnx.merge(graphdef, state)
            leaves = jax.tree.leaves(nnx.state(model.actor))
            action = np.asarray(act(ref.actor_graphdef, ref._actor_treedef, leaves, obs, ref.act_key, t))
        next_obs, reward, terminated, truncated, _ = env.step(action * 2.0)  # Pendulum: [-2, 2]
        buffer_state = buffer.add(buffer_state, obs, action, reward, next_obs, terminated, truncated)
        if t + 1 >= config.learning_starts:
            state = one_update(state, buffer_state, jax.random.fold_in(ref.update_key, n_updates))
            n_updates += 1
        obs = env.reset()[0] if terminated or truncated else next_obs

    assert sac.updates == n_updates == steps - config.learning_starts + 1
    for got, want in zip(jax.tree.leaves(sac.state), jax.tree.leaves(state)):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)


def test_sac_same_seed_same_run() -> None:
    config = TINY.replace(total_steps=LEARNING_STARTS + 20, eval_interval=LEARNING_STARTS + 20)
    first, second = SAC(config).run(), SAC(config).run()
    assert first["eval_history"][-1]["returns"] == second["eval_history"][-1]["returns"]
    assert first["updates"] == second["updates"] == 20
    other = SAC(config.replace(seed=1)).run()
    assert other["eval_history"][-1]["returns"] != first["eval_history"][-1]["returns"]


def test_sac_runs_of_one_configuration_share_one_compiled_update() -> None:
    """The learner is the jitted update's static argument: equal configurations (any seed)
    must give equal learners, so a second run reuses the first's compiled chunk (a fresh
    optax closure per run made every SAC compile its own, ~7 s each); a changed
    hyperparameter must still give its own."""
    first, second = SAC(TINY), SAC(TINY.replace(seed=3))
    assert first.learner == second.learner and hash(first.learner) == hash(second.learner)
    assert SAC(TINY.replace(q_lr=2 * TINY.q_lr)).learner != first.learner
    compiled = update_chunk._cache_size()
    first.train_chunk()
    second.train_chunk()
    assert update_chunk._cache_size() - compiled <= 1, "the second run compiled its own update"


def test_sac_rejects_discrete_actions_and_bad_config() -> None:
    with pytest.raises(ValueError, match="continuous"):
        SAC(TINY.replace(env_id="CartPole-v1"))
    for bad in ({"tau": 0.0}, {"chunk_updates": 0}, {"reward_scale": 0.0}, {"gamma": 1.5},
                {"hidden_sizes": ()}, {"utd_ratio": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TINY.replace(**bad)


def test_sac_buffer_holds_exactly_the_envs_transitions_in_order() -> None:
    # Pendulum truncates at 200 steps: 450 warm-up steps cross two time-limit ends; no
    # update is due, so only acting, staging and the device write are exercised.
    from tests.transitions import assert_buffer_replays_the_env

    steps = 450
    config = TINY.replace(total_steps=steps, learning_starts=steps + 1, eval_interval=steps,
                          seed=5)
    sac = SAC(config)
    for _ in range(steps):  # one step per call: resuming carries the observation over
        sac.advance(1)
    sac.train_metrics()  # flushes the staged rows into the device buffer
    n = int(sac.buffer_state.size)
    assert n == steps
    stored = Batch(*(np.asarray(field)[:n] for field in sac.buffer_state.data))
    ends = assert_buffer_replays_the_env(stored, config.env_id, config.seed, "SAC loop",
                                         to_env=sac._to_env)
    assert ends == 2


def test_sac_run_records_say_what_happened(tmp_path) -> None:
    # 250 warm-up steps (no update due): Pendulum truncates at 200, so one episode ends.
    # log_interval 60 and eval_interval 100 do not divide 250: the last step adds a record.
    import json

    from tests.transitions import assert_buffer_replays_the_env

    steps = 250
    config = TINY.replace(total_steps=steps, learning_starts=steps + 1, eval_interval=100,
                          log_interval=60, seed=2)
    sac = SAC(config)
    summary = sac.run(out_dir=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["kind"] == "train"] == [60, 120, 180, 240, 250], (
        "log at every multiple of log_interval and at total_steps, nowhere else")
    assert [e["step"] for e in summary["eval_history"]] == [100, 200, 250], (
        "evaluate at every multiple of eval_interval and at total_steps, nowhere else")

    n = int(sac.buffer_state.size)
    stored = Batch(*(np.asarray(field)[:n] for field in sac.buffer_state.data))
    assert assert_buffer_replays_the_env(stored, config.env_id, config.seed, "SAC run",
                                         to_env=sac._to_env) == 1
    first_episode = float(np.sum(stored.reward[:200], dtype=np.float64))
    last = [r for r in rows if r["kind"] == "train"][-1]
    assert (last["episodes"], sac.metrics()["episodes"]) == (1, 1.0)
    assert last["episode_return"] == pytest.approx(first_episode, rel=1e-5), (
        "the logged episode return is not the sum of the finished episode's rewards")
    assert sac.metrics()["episode_return"] == pytest.approx(first_episode, rel=1e-5)


def test_sac_evaluation_is_not_seeded_like_training() -> None:
    # Evaluated from the training env's own start states, a policy is graded on episodes
    # it may have memorised; the evaluation env must be seeded apart.
    config = TINY.replace(total_steps=10, learning_starts=11, eval_interval=10, seed=3)
    sac = SAC(config)
    seen: list[np.ndarray] = []
    sac.policy = lambda: (lambda obs: seen.append(np.array(obs)) or np.zeros(1, np.float32))
    sac.run()
    train_start, _ = make(config.env_id).reset(seed=config.seed)
    assert seen, "the run never evaluated"
    assert not np.array_equal(seen[0], train_start), (
        "the evaluation episode starts where the training env's first episode starts")


def test_sac_value_report_is_the_clipped_double_q_at_the_greedy_action() -> None:
    from rlbench.trainers.sac_jax import greedy

    sac = SAC(TINY)
    leaves = jax.tree.leaves(nnx.state(sac.model.actor))
    for obs in PROBE_OBS[:3]:
        a = greedy(sac.actor_graphdef, sac._actor_treedef, leaves, jnp.asarray(obs))
        q1, q2 = (float(np.asarray(q).reshape(())) for q in
                  sac.model.critic(jnp.asarray(obs)[None], jnp.reshape(a, (1, -1))))
        assert q1 != q2, "independently initialised critics agree: the law was not tested"
        assert sac.values(obs) == pytest.approx([min(q1, q2)], rel=1e-6), (
            f"values() reports {sac.values(obs)}, not min(Q1, Q2) = min({q1}, {q2})")


def test_sac_flattens_any_box_observation() -> None:
    # A (3, 1) float64 observation: the buffer rows, the acting input and the observation
    # after a reset (Pendulum truncates at 200) are all the flat float32 vector.
    from tests.transitions import assert_buffer_replays_the_env

    steps = 220
    config = TINY.replace(env_id="tests.odd_envs:ColumnObsPendulum-v0", total_steps=steps,
                          learning_starts=steps - 8, eval_interval=steps, seed=4)
    sac = SAC(config)
    sac.advance(steps)
    assert sac.updates > 0, "no update ran: acting from the actor was not exercised"
    assert sac._obs.shape == (3,) and sac._obs.dtype == np.float32
    sac.train_metrics()
    n = int(sac.buffer_state.size)
    stored = Batch(*(np.asarray(field)[:n] for field in sac.buffer_state.data))
    assert assert_buffer_replays_the_env(stored, config.env_id, config.seed, "SAC loop",
                                         to_env=sac._to_env) == 1
    # Evaluation gets the env's observations as they come, (3, 1) float64 columns too.
    raw = np.array([[0.5], [-0.5], [0.25]])
    policy = sac.policy()
    np.testing.assert_array_equal(policy(raw), policy(raw.reshape(-1).astype(np.float32)))


def test_sac_stops_at_a_non_finite_observation() -> None:
    from tests.odd_envs import NAN_AFTER

    sac = SAC(TINY.replace(env_id="tests.odd_envs:NaNObsPendulum-v0"))
    with pytest.raises(ValueError, match=f"non-finite transition at step {NAN_AFTER}"):
        sac.advance(NAN_AFTER + 5)
    assert sac.env_steps == NAN_AFTER, "the non-finite transition was counted as a step"
