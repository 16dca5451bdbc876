"""The numpy replay buffer: wrap-around, validation, diagnostics, the buffer faults' detectors."""

from __future__ import annotations

import numpy as np
import pytest

from rlbench.buffers import ReplayBuffer


def _fill(buf: ReplayBuffer, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        buf.add(np.full(buf.obs_shape, i + 1, np.float32), i % 2, float(i + 1),
                np.full(buf.obs_shape, i + 2, np.float32), i % 3 == 0, i % 5 == 0)


def test_buffer_wraps_around_fifo() -> None:
    buf = ReplayBuffer(4, (2,))
    _fill(buf, 6)  # rewards 1..6; slots hold 5, 6, 3, 4
    assert len(buf) == 4 and buf.total_writes == 6
    stored = sorted(buf.get(np.arange(4)).reward.tolist())
    assert stored == [3.0, 4.0, 5.0, 6.0]


@pytest.mark.detects("buffer-drops-writes")
def test_buffer_stores_what_was_added() -> None:
    """Detector for buffer-drops-writes: every field reads back exactly as written."""
    buf = ReplayBuffer(8, (3,))
    _fill(buf, 5)
    batch = buf.get(np.arange(5))
    np.testing.assert_array_equal(batch.obs[:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(batch.next_obs[:, 0], [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(batch.action, [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(batch.reward, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(batch.terminated, [True, False, False, True, False])
    np.testing.assert_array_equal(batch.truncated, [True, False, False, False, False])
    assert buf.stats()["zero_obs_fraction"] == 0.0


@pytest.mark.detects("sample-unfilled-slots")
def test_buffer_samples_only_filled_slots() -> None:
    """Detector for sample-unfilled-slots: a 1000-slot buffer with 10 transitions."""
    buf = ReplayBuffer(1000, (2,))
    _fill(buf, 10)
    idx = buf.sample_indices(4096, np.random.default_rng(0))
    assert idx.min() >= 0 and idx.max() < 10
    batch = buf.sample(4096, np.random.default_rng(1))
    assert np.all(batch.reward >= 1.0)  # an unfilled slot would read reward 0


def test_buffer_add_batch_equals_repeated_add() -> None:
    a, b = ReplayBuffer(5, (2,)), ReplayBuffer(5, (2,))
    _fill(a, 7)
    obs = np.stack([np.full(2, i + 1, np.float32) for i in range(7)])
    b.add_batch(obs, np.arange(7) % 2, np.arange(1, 8, dtype=np.float32), obs + 1,
                np.arange(7) % 3 == 0, np.arange(7) % 5 == 0)
    for field_a, field_b in zip(a.get(np.arange(5)), b.get(np.arange(5))):
        np.testing.assert_array_equal(field_a, field_b)
    assert len(a) == len(b) == 5 and a.total_writes == b.total_writes == 7


def test_buffer_continuous_actions_store_float_vectors() -> None:
    buf = ReplayBuffer(3, (1,), action_shape=(2,))
    buf.add(np.ones(1), np.array([0.5, -0.5]), 1.0, np.ones(1), False, True)
    batch = buf.sample(2, np.random.default_rng(0))
    assert batch.action.dtype == np.float32 and batch.action.shape == (2, 2)


def test_buffer_accepts_0_1_integer_flags_as_booleans() -> None:
    # Envs and wrappers often hand flags over as 0/1 ints (np.int64 from a vector env).
    buf = ReplayBuffer(2, (1,))
    buf.add(np.zeros(1), 0, 1.0, np.ones(1), np.int64(0), 1)
    buf.add(np.zeros(1), 1, 1.0, np.ones(1), 1, np.int64(0))
    assert buf._data["terminated"][:2].tolist() == [False, True], "terminated 0/1 not stored"
    assert buf._data["truncated"][:2].tolist() == [True, False], "truncated 0/1 not stored"


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("obs", np.ones(3), "obs: expected shape"),
        ("next_obs", np.full(2, np.nan), "next_obs: contains NaN"),
        ("reward", np.inf, "reward: contains NaN or inf"),
        ("reward", float("nan"), "reward: contains NaN"),
        ("action", 1.5, "action: dtype float64 cannot be cast"),
        ("terminated", 2, "terminated: expected booleans"),
        ("obs", np.array(["a", "b"]), "obs: dtype"),
    ],
)
def test_buffer_rejects_bad_input_and_stays_unchanged(field: str, value, match: str) -> None:
    buf = ReplayBuffer(4, (2,))
    _fill(buf, 2)
    before = {k: v.copy() for k, v in buf._data.items()}
    good = dict(obs=np.zeros(2), action=1, reward=0.5, next_obs=np.zeros(2),
                terminated=False, truncated=False)
    with pytest.raises(ValueError, match=match):
        buf.add(**(good | {field: value}))
    assert len(buf) == 2 and buf.total_writes == 2
    for k, v in before.items():
        np.testing.assert_array_equal(buf._data[k], v)


def test_buffer_rejects_bad_batch_without_writing_any_row() -> None:
    buf = ReplayBuffer(4, (2,))
    obs = np.zeros((3, 2))
    reward = np.array([1.0, np.nan, 1.0])
    with pytest.raises(ValueError, match="reward"):
        buf.add_batch(obs, np.zeros(3, int), reward, obs, np.zeros(3, bool), np.zeros(3, bool))
    assert len(buf) == 0 and buf.total_writes == 0


def test_buffer_sampling_empty_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(4, (2,)).sample(1, np.random.default_rng(0))


def test_buffer_rejects_impossible_config() -> None:
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(0, (2,))
    with pytest.raises(ValueError, match="batch_size"):
        buf = ReplayBuffer(4, (2,))
        _fill(buf, 1)
        buf.sample(0, np.random.default_rng(0))


def test_buffer_stats_report_filling_and_reward_range() -> None:
    buf = ReplayBuffer(10, (2,))
    assert buf.stats() == {"size": 0, "capacity": 10, "total_writes": 0}
    _fill(buf, 4)
    buf.add(np.zeros(2), 0, -3.0, np.zeros(2), False, False)
    stats = buf.stats()
    assert stats["size"] == 5 and stats["total_writes"] == 5
    assert stats["zero_obs_fraction"] == pytest.approx(0.2)
    assert (stats["reward_min"], stats["reward_max"]) == (-3.0, 4.0)
    assert stats["reward_mean"] == pytest.approx(7 / 5)
    assert stats["terminated_fraction"] == pytest.approx(2 / 5)


def test_buffer_fault_switch_comes_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RLBENCH_FAULTS", "buffer-drops-writes")
    buf = ReplayBuffer(4, (2,))
    _fill(buf, 2)
    assert len(buf) == 2 and buf.stats()["zero_obs_fraction"] == 1.0  # the bug, made visible
