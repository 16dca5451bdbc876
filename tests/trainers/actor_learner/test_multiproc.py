"""Process plumbing of the actor/learner trainer: the weight channel and the process group.

Timeouts (pytest-timeout) are hang guards, not speed claims: each test takes seconds.
"""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

pytest.importorskip("torch")  # needs the `torch` extra: skipped where it is not installed

from rlbench.trainers.multiproc import ChildProcessFailed, ProcessGroup, WeightChannel

TEMPLATE = {"w": np.zeros((256, 256), np.float32), "b": np.zeros(256, np.float32),
            "count": np.zeros((), np.int64)}


@pytest.fixture
def channel():
    ch = WeightChannel(TEMPLATE)
    yield ch
    ch.close()


def _filled(value: int) -> dict[str, np.ndarray]:
    return {k: np.full_like(v, value) for k, v in TEMPLATE.items()}


def test_weight_channel_round_trip_with_version_and_epsilon(channel) -> None:
    assert channel.seq == -1 and channel.version == -1
    channel.publish(_filled(3), version=30, epsilon=0.25)
    arrays, seq, version, epsilon = channel.read()
    assert (seq, version, epsilon) == (0, 30, 0.25)
    for key, value in _filled(3).items():
        np.testing.assert_array_equal(arrays[key], value)
    channel.publish(_filled(3), version=30, epsilon=0.2)  # same weights, new epsilon
    assert (channel.seq, channel.version, channel.epsilon) == (1, 30, 0.2)


def test_a_channel_rebuilt_from_its_pickled_state_reads_the_publication(channel) -> None:
    # What a spawned child holds: a channel made by __setstate__ from __getstate__'s dict
    # (pickling itself needs a spawn in progress, for the lock).
    clone = WeightChannel.__new__(WeightChannel)
    clone.__setstate__(channel.__getstate__())
    channel.publish(_filled(7), version=70, epsilon=0.5)
    arrays, seq, version, epsilon = clone.read()
    assert (clone.seq, seq, version, epsilon) == (0, 0, 70, 0.5)
    np.testing.assert_array_equal(arrays["w"], _filled(7)["w"])


def test_weight_channel_rejects_mismatched_or_older_sets(channel) -> None:
    channel.publish(_filled(1), version=5, epsilon=1.0)
    with pytest.raises(ValueError, match="expected arrays"):
        channel.publish({"w": TEMPLATE["w"]}, version=6, epsilon=1.0)
    with pytest.raises(ValueError, match="shape"):
        channel.publish(_filled(1) | {"b": np.zeros(3, np.float32)}, version=6, epsilon=1.0)
    with pytest.raises(ValueError, match="older"):
        channel.publish(_filled(1), version=4, epsilon=1.0)
    assert channel.version == 5 and channel.seq == 0


def _publish_many(worker, channel: WeightChannel, n: int) -> int:
    for v in range(1, n + 1):
        channel.publish(_filled(v), version=v, epsilon=v / 1000)
    channel.close()
    return n


@pytest.mark.timeout(120)
def test_weight_channel_reader_never_sees_a_mixed_set(channel) -> None:
    """A publisher process rewrites 256 KB sets as fast as it can while we read: every set
    read has one version in every array and the epsilon published with it."""
    out = {k: np.empty_like(v) for k, v in TEMPLATE.items()}
    seen = set()
    with ProcessGroup(torch_threads=None) as group:
        group.spawn("publisher", _publish_many, channel, 400)
        while group.running:
            group.poll(0.0)
            if channel.seq >= 0:
                _, version, epsilon = channel.read_into(out)
                seen.add(version)
                assert all(np.all(v == version) for v in out.values()), "mixed versions"
                assert epsilon == version / 1000, "epsilon from another publication"
    assert channel.version == 400 and len(seen) > 1


# -- process group ---------------------------------------------------------------------------
def _explode_in_child(worker, message: str) -> None:
    raise ZeroDivisionError(message)


def _exit_silently(worker, code: int) -> None:
    os._exit(code)  # no exception, no message: like a segfault or the OOM killer


def _sleep_forever(worker, ignore_stop: bool) -> None:
    while ignore_stop or not worker.should_stop():
        time.sleep(0.01)


def _send_three(worker) -> str:
    for i in range(3):
        worker.send("note", i)
    return "sent"


def test_process_group_poll_waits_its_timeout_for_a_first_message() -> None:
    """With nothing to read, poll blocks for its timeout (the parent's loop sleeps there)
    instead of returning at once, which would turn every caller's wait into a busy loop."""
    with ProcessGroup(torch_threads=None) as group:
        start = time.monotonic()
        assert group.poll(0.3) == []
        assert time.monotonic() - start >= 0.25, "poll returned before its timeout"


@pytest.mark.timeout(60)
def test_process_group_poll_returns_every_queued_message_at_once() -> None:
    """One poll drains the pipe: every message a child has sent comes back (its own kinds
    in order, "started"/"done" consumed into `started`/`results`), not one per call."""
    with ProcessGroup(torch_threads=None) as group:
        group.spawn("talker", _send_three)
        group.procs["talker"].join(timeout=30)  # exited: all it sent is in the pipe
        assert group.poll(1.0) == [("talker", "note", 0), ("talker", "note", 1),
                                   ("talker", "note", 2)]
        assert group.started == {"talker"} and group.results == {"talker": "sent"}


@pytest.mark.timeout(60)
def test_process_group_child_exception_reaches_parent_with_traceback() -> None:
    with pytest.raises(ChildProcessFailed) as info, ProcessGroup(torch_threads=None) as group:
        group.spawn("sleeper", _sleep_forever, False)
        group.spawn("crasher", _explode_in_child, "injected crash 42")
        while True:
            group.poll()
    err = info.value
    assert err.child == "crasher" and "ZeroDivisionError: injected crash 42" in str(err)
    assert "_explode_in_child" in err.child_traceback  # the child's own frames
    assert not any(p.is_alive() for p in group.procs.values())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("code", [3, 0])  # 0: a clean exit without a result is a failure too
def test_process_group_silent_child_death_is_reported(code: int) -> None:
    with pytest.raises(ChildProcessFailed, match=f"exited \\(exit code {code}\\)") as info, \
            ProcessGroup(torch_threads=None) as group:
        group.spawn("vanisher", _exit_silently, code)
        while True:
            group.poll()
    assert info.value.child == "vanisher"


@pytest.mark.timeout(60)
def test_process_group_stop_ends_children_that_ignore_it() -> None:
    with ProcessGroup(torch_threads=None, stop_timeout_s=0.5) as group:
        group.spawn("polite", _sleep_forever, False)
        group.spawn("stubborn", _sleep_forever, True)
        time.sleep(0.5)
    assert not any(p.is_alive() for p in group.procs.values())
    assert group.procs["stubborn"].exitcode == -signal.SIGTERM


@pytest.mark.timeout(60)
def test_process_group_sigterm_stops_children_via_system_exit() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as info, ProcessGroup(torch_threads=None) as group:
        group.spawn("polite", _sleep_forever, False)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
    assert info.value.code == 128 + signal.SIGTERM
    assert not group.procs["polite"].is_alive()
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored
