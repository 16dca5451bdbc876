"""The shared-memory replay buffer: the numpy buffer's contract, concurrent writers from
several processes, the buffer faults' detectors, and segment cleanup."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from rlbench.buffers import ReplayBuffer
from rlbench.buffers.shared import SharedArrays, SharedReplayBuffer
from rlbench.trainers.multiproc import ProcessGroup
from tests.segments import mapped, segments_of

OBS = (256,)  # wide rows: a torn write would show as mixed values inside one row


def _fill(buf, n: int, start: int = 0) -> None:
    versioned = isinstance(buf, SharedReplayBuffer)
    for i in range(start, start + n):
        buf.add(np.full(buf.obs_shape, i + 1, np.float32), i % 2, float(i + 1),
                np.full(buf.obs_shape, i + 2, np.float32), i % 3 == 0, i % 5 == 0,
                **({"version": i} if versioned else {}))


@pytest.fixture
def shared():
    made: list[SharedReplayBuffer] = []

    def make(*args, **kwargs) -> SharedReplayBuffer:
        made.append(SharedReplayBuffer(*args, **kwargs))
        return made[-1]

    yield make
    for buf in made:
        buf.close()


@pytest.mark.detects("buffer-drops-writes")
def test_shared_buffer_stores_what_was_added(shared) -> None:
    """Detector for buffer-drops-writes: every field (and the version) reads back exactly."""
    buf = shared(8, (3,))
    _fill(buf, 5)
    batch = buf.get(np.arange(5))
    np.testing.assert_array_equal(batch.obs[:, 0], [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(batch.next_obs[:, 0], [2, 3, 4, 5, 6])
    np.testing.assert_array_equal(batch.action, [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(batch.reward, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(batch.terminated, [True, False, False, True, False])
    np.testing.assert_array_equal(batch.truncated, [True, False, False, False, False])
    np.testing.assert_array_equal(buf.versions(np.arange(5)), [0, 1, 2, 3, 4])
    stats = buf.stats()
    assert stats["zero_obs_fraction"] == 0.0
    assert (stats["version_min"], stats["version_max"]) == (0, 4)


@pytest.mark.detects("sample-unfilled-slots")
def test_shared_buffer_samples_only_filled_slots(shared) -> None:
    """Detector for sample-unfilled-slots: a 1000-slot buffer with 10 transitions."""
    buf = shared(1000, (2,))
    _fill(buf, 10)
    idx = buf.sample_indices(4096, np.random.default_rng(0))
    assert idx.min() >= 0 and idx.max() < 10
    batch, versions = buf.sample_with_versions(4096, np.random.default_rng(1))
    assert np.all(batch.reward >= 1.0)  # an unfilled slot would read reward 0
    np.testing.assert_array_equal(versions, batch.reward - 1)


def test_shared_buffer_samples_like_numpy_buffer(shared) -> None:
    """Same writes, same rng → the same batches as the numpy buffer (wrap-around included)."""
    a, b = shared(5, OBS), ReplayBuffer(5, OBS)
    _fill(a, 7)
    _fill(b, 7)
    for x, y in zip(a.sample(32, np.random.default_rng(3)), b.sample(32, np.random.default_rng(3))):
        np.testing.assert_array_equal(x, y)
    sa, sb = a.stats(), b.stats()
    assert {k: sa[k] for k in sb} == sb and len(a) == len(b) == 5


def test_shared_buffer_rejects_bad_input_unchanged(shared) -> None:
    buf = shared(4, (2,))
    _fill(buf, 2)
    before = buf.get(np.arange(4))
    with pytest.raises(ValueError, match="obs: expected shape"):
        buf.add(np.zeros(3, np.float32), 0, 1.0, np.zeros(2, np.float32), False, False)
    with pytest.raises(ValueError, match="reward: contains NaN"):
        buf.add_batch(np.zeros((2, 2)), [0, 1], [1.0, np.nan], np.zeros((2, 2)), [0, 0], [0, 0])
    with pytest.raises(ValueError, match="empty"):
        shared(4, (2,)).sample(1, np.random.default_rng(0))
    with pytest.raises(ValueError, match="capacity"):
        SharedReplayBuffer(0, (2,))
    assert len(buf) == 2 and buf.total_writes == 2
    for x, y in zip(before, buf.get(np.arange(4))):
        np.testing.assert_array_equal(x, y)


def test_shared_buffer_attached_copy_sees_the_same_memory(shared) -> None:
    buf = shared(4, (2,))
    segment = pickle.loads(pickle.dumps(buf._segment))  # attach by name, as a child does
    _fill(buf, 3)
    np.testing.assert_array_equal(segment["reward"][:3], [1, 2, 3])
    segment.close()  # a non-owner detaches without unlinking
    assert buf.segment_name in segments_of()


def test_shared_buffer_early_unlink_keeps_memory_for_attached_views(shared) -> None:
    buf = shared(4, (2,))
    attached = pickle.loads(pickle.dumps(buf._segment))
    buf.unlink()  # the name goes; both mappings stay valid
    assert buf.segment_name not in segments_of()
    _fill(buf, 2)
    np.testing.assert_array_equal(attached["reward"][:2], [1, 2])
    attached.close()
    buf.close()  # unlinking again is harmless


def test_close_unmaps_this_processs_view_and_drops_its_arrays(shared) -> None:
    # A process that closes must give the memory back, not keep it mapped through arrays
    # that outlive the close; an attached copy's close leaves the owner's view alone.
    buf = shared(4, (2,))
    attached = pickle.loads(pickle.dumps(buf._segment))
    attached.close()
    assert mapped({buf.segment_name}), "an attached copy's close unmapped the owner's view"
    with pytest.raises(KeyError):
        attached["reward"]
    buf.close()
    assert not mapped({buf.segment_name}), "close() left this process's view mapped"


def test_every_array_of_a_segment_starts_on_its_own_cache_line() -> None:
    # 64-byte boundaries: no two arrays share a cache line (writers of one field do not
    # invalidate a reader's line of another) and every dtype is aligned for numpy.
    layout = {"a": ((3,), np.uint8), "b": ((5,), np.float64), "c": ((2, 3), np.float32)}
    segment = SharedArrays(layout)
    try:
        starts = {k: segment[k].ctypes.data for k in layout}  # the mapping is page-aligned
        assert all(s % 64 == 0 for s in starts.values()), f"addresses mod 64: {starts}"
        assert all(segment[k].flags.aligned for k in layout)
    finally:
        segment.close()


def test_shared_buffer_unlinks_segment_on_close_and_on_error() -> None:
    with SharedReplayBuffer(4, (2,)) as buf:
        name = buf.segment_name
        assert name in segments_of()
    assert name not in segments_of()
    with pytest.raises(RuntimeError, match="boom"), SharedReplayBuffer(4, (2,)) as buf:
        name = buf.segment_name
        raise RuntimeError("boom")
    assert name not in segments_of()


# -- several processes writing at once ---------------------------------------------------------
WRITERS, PER_WRITER, CHUNK = 3, 2000, 32


def _tag(writer: int, seq: np.ndarray) -> np.ndarray:
    return writer * 10_000 + seq


def _write_tagged(worker, buf: SharedReplayBuffer, writer: int) -> int:
    """Writes PER_WRITER transitions whose every field is derived from one tag, mixing
    single adds and add_batch calls."""
    seq = 0
    while seq < PER_WRITER:
        n = 1 if seq % 2 else min(CHUNK, PER_WRITER - seq)
        tags = _tag(writer, np.arange(seq, seq + n))
        obs = np.repeat(tags[:, None].astype(np.float32), OBS[0], axis=1)
        if n == 1:
            buf.add(obs[0], tags[0] % 2, float(tags[0]), obs[0] + 0.5, tags[0] % 3 == 0,
                    tags[0] % 5 == 0, version=int(tags[0]))
        else:
            buf.add_batch(obs, tags % 2, tags.astype(np.float32), obs + 0.5, tags % 3 == 0,
                          tags % 5 == 0, version=tags)
        seq += n
    buf.close()
    return seq


def _check_whole(rows, versions: np.ndarray) -> np.ndarray:
    """Assert every row was written whole by one writer call; return the tags."""
    tags = rows.reward.astype(np.int64)
    assert np.all(rows.obs == tags[:, None]), "torn obs"
    assert np.all(rows.next_obs == tags[:, None] + 0.5), "torn next_obs"
    np.testing.assert_array_equal(rows.action, tags % 2)
    np.testing.assert_array_equal(rows.terminated, tags % 3 == 0)
    np.testing.assert_array_equal(rows.truncated, tags % 5 == 0)
    np.testing.assert_array_equal(versions, tags)
    return tags


def _run_writers(buf: SharedReplayBuffer) -> None:
    pytest.importorskip("torch")  # ProcessGroup spawns through torch.multiprocessing
    rng = np.random.default_rng(0)
    with ProcessGroup(torch_threads=None) as group:
        for w in range(WRITERS):
            group.spawn(f"writer-{w}", _write_tagged, buf, w + 1)
        while group.running:
            group.poll(0.01)
            if len(buf):  # the learner's view while writers race: only whole rows
                _check_whole(*buf.sample_with_versions(64, rng))
    assert all(group.results[f"writer-{w}"] == PER_WRITER for w in range(WRITERS))


@pytest.mark.timeout(120)
def test_shared_buffer_concurrent_tagged_writes_all_whole_and_counted(shared) -> None:
    """3 processes write 600 tagged transitions each into room for all of them: every
    transition is stored exactly once and whole, and the counts add up."""
    buf = shared(WRITERS * PER_WRITER, OBS)
    _run_writers(buf)
    total = WRITERS * PER_WRITER
    assert buf.total_writes == total and len(buf) == total
    tags = _check_whole(buf.get(np.arange(total)), buf.versions(np.arange(total)))
    expected = [_tag(w + 1, s) for w in range(WRITERS) for s in range(PER_WRITER)]
    assert sorted(tags.tolist()) == expected


@pytest.mark.timeout(120)
def test_shared_buffer_concurrent_writes_wrap_fifo(shared) -> None:
    """Writers overrun a smaller ring: rows stay whole, counts add up, and each writer's
    surviving transitions are its newest ones (FIFO overwrite)."""
    buf = shared(500, OBS)
    _run_writers(buf)
    assert buf.total_writes == WRITERS * PER_WRITER and len(buf) == 500
    tags = _check_whole(buf.get(np.arange(500)), buf.versions(np.arange(500)))
    assert len(set(tags.tolist())) == 500
    for w in range(1, WRITERS + 1):
        seqs = np.sort(tags[tags // 10_000 == w] % 10_000)
        if len(seqs):
            np.testing.assert_array_equal(seqs, np.arange(PER_WRITER - len(seqs), PER_WRITER))


def test_sweep_unlinks_only_segments_of_dead_creators(tmp_path) -> None:
    """What a SIGKILLed process group leaves in /dev/shm goes; a live process's segment stays."""
    import subprocess
    import sys

    from rlbench.buffers.shared import sweep_orphan_segments

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    orphan = tmp_path / f"rlbench_{dead}_0badc0de"
    alive = tmp_path / f"rlbench_{os.getpid()}_0badc0de"
    other = tmp_path / "someone_else_123_x"
    for path in (orphan, alive, other):
        path.write_bytes(b"x")
    assert sweep_orphan_segments(shm_dir=str(tmp_path)) == [orphan.name]
    assert not orphan.exists() and alive.exists() and other.exists()
