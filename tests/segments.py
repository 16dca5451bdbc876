"""What a process leaves of rlbench's shared-memory segments: names in /dev/shm (what a
crash would leak) and mappings in this process (what close() must give back)."""

from __future__ import annotations

import os
from pathlib import Path

from rlbench.buffers.shared import SEGMENT_PREFIX


def segments_of(pid: int | None = None) -> set[str]:
    """Segment names in /dev/shm created by process `pid` (default: this one)."""
    prefix = f"{SEGMENT_PREFIX}_{pid or os.getpid()}_"
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}


def in_dev_shm(names: set[str]) -> set[str]:
    """Which of `names` are still named in /dev/shm."""
    return names & set(os.listdir("/dev/shm"))


def mapped(names: set[str]) -> set[str]:
    """Which of the segments `names` this process still maps (named or already unlinked)."""
    maps = Path("/proc/self/maps").read_text()
    return {n for n in names if n in maps}
