"""The claimed rows of one dispatch, handed out one at a time to its SMTP sessions (threads):
the feed claims a batch when the last one is used up, renews a batch held too long, and on a
stop or a failure hands back what no session took."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from engine.model import Due

log = logging.getLogger("lifecycle.runner")


class Claims(Protocol):
    """What the feed needs of the outbox."""

    def claim_due(self, now: datetime, limit: int = 100) -> list[Due]: ...
    def release_claims(self, ids: Sequence[int], now: datetime) -> int: ...


class Feed:
    """Thread-safe. `next()` is each session's "what do I send now": a claimed row and the
    time it is handed over, or None when there is nothing more (the queue is empty, the
    dispatcher is stopping, or a session failed)."""

    def __init__(
        self,
        outbox: Claims,
        clock: Callable[[], datetime],
        *,
        batch_size: int,
        should_stop: Callable[[], bool],
        renew_after: timedelta,
    ) -> None:
        self.outbox = outbox
        self.clock = clock
        self.batch_size = batch_size
        self.should_stop = should_stop
        # A claim is stamped once, when the batch is claimed: a batch still in hand after
        # half the lease hands back what it has not sent and claims afresh, so that another
        # replica's recovery never takes the rows of a live dispatcher for abandoned ones.
        self.renew_after = renew_after
        self._lock = threading.Lock()
        self._batch: deque[Due] = deque()
        self._claimed = datetime.min
        self._taken = 0  # rows of the batch handed out
        self._done = False

    def prime(self) -> int:
        """Claim the first batch before any session starts: the rows it holds (0 when there
        is nothing to send, or the dispatcher is stopping), so that a dispatch with nothing
        due starts no thread, and one with few rows no more sessions than rows."""
        with self._lock:
            if self._done or self.should_stop():  # asked before each claim
                self._done = True
                return 0
            self._claim()
            return len(self._batch)

    def next(self) -> tuple[Due, datetime] | None:
        with self._lock:
            while not self._done:
                if not self._batch:
                    if self.should_stop():  # asked before each claim ...
                        self._done = True
                        return None
                    self._claim()
                    continue
                if self.should_stop():  # ... and before each send
                    released = self._release_rest(self.clock())
                    log.info("stopping: %d claimed deliveries handed back unsent", released)
                    self._done = True
                    return None
                now = self.clock()
                if self._taken and now - self._claimed >= self.renew_after:
                    released = self._release_rest(now)
                    log.info("%d claimed deliveries handed back to be claimed afresh", released)
                    continue
                self._taken += 1
                return self._batch.popleft(), now
            return None

    def _claim(self) -> None:
        self._claimed = self.clock()
        try:
            self._batch.extend(self.outbox.claim_due(self._claimed, self.batch_size))
        except BaseException:
            self._done = True  # the other sessions stop too; the caller sees the error
            raise
        self._taken = 0
        if not self._batch:
            self._done = True

    def _release_rest(self, now: datetime) -> int:
        ids = [item.id for item in self._batch]
        self._batch.clear()
        return self.outbox.release_claims(ids, now) if ids else 0

    def abandon(self) -> list[int]:
        """Stop handing out rows (a session failed); the claimed rows nobody took, for the
        caller to hand back (or to leave to the stale-claim recovery)."""
        with self._lock:
            self._done = True
            ids = [item.id for item in self._batch]
            self._batch.clear()
            return ids
