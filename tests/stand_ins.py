"""Stand-ins for the actor/learner's process plumbing, for running an Actor or Learner
inside the test's own process."""

from __future__ import annotations

from typing import Any


class RecordingWorker:
    """Stands in for `multiproc.Worker`: keeps the messages it is sent; asked to stop from
    the `stop_after`-th `should_stop()` call on (never, by default)."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.stop_after, self.asked = stop_after, 0

    def send(self, kind: str, payload: Any = None) -> None:
        self.messages.append((kind, payload))

    def should_stop(self) -> bool:
        self.asked += 1
        return self.stop_after is not None and self.asked > self.stop_after
