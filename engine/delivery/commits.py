"""Group commit for the SMTP sessions' ledger steps: a session that must write while another
session's transaction is running queues its step, and the next writer commits every queued
step in one transaction. Each session still waits for its own step to be committed before it
sends, so the bound "one message in doubt per session" holds; the commits per email fall
with the sessions that meet, and on SQLite the sessions no longer fight for its write lock
(whose busy handler sleeps for milliseconds)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from engine.store.outbox import Step

Write = Callable[[Sequence[Step]], list[bool]]  # `Outbox.advance`: one transaction


class _Request:
    __slots__ = ("done", "error", "started", "step")

    def __init__(self, step: Step) -> None:
        self.step = step
        self.done = False
        self.started = False
        self.error: BaseException | None = None


class GroupCommit:
    def __init__(self, write: Write) -> None:
        self.write = write
        self._writer = threading.Lock()  # held by the session writing a transaction
        self._queue_lock = threading.Lock()
        self._queue: list[_Request] = []

    def commit(self, step: Step) -> bool:
        """Write `step` (with whatever other sessions queued meanwhile), committed when this
        returns; whether its `start` is ours to send. Raises what the write raised."""
        request = _Request(step)
        with self._queue_lock:
            self._queue.append(request)
        with self._writer:
            if not request.done:  # nobody took it along: write the queue, this one included
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                try:
                    started = self.write([r.step for r in batch])
                except BaseException as exc:  # noqa: BLE001 - each session raises it itself
                    for r in batch:
                        r.error, r.done = exc, True
                else:
                    for r, ok in zip(batch, started, strict=True):
                        r.started, r.done = ok, True
        if request.error is not None:
            raise request.error
        return request.started
