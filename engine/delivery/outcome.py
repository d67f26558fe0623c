"""What a send's result means for its row: sent, retried with backoff, failed (a bounce also
suppresses the address), or unknown (the server may have it). Decided here, written by the
dispatcher (`Outbox.advance`), so that the write can share a transaction with the next row."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from engine.config import RetryConfig
from engine.delivery.mail import (
    PermanentSendError,
    TransientSendError,
    TransportSetupError,
    UncertainSendError,
)
from engine.model import Due, SkipReason, Status
from engine.store.outbox import Finish

log = logging.getLogger("lifecycle.runner")

Suppress = Callable[..., None]  # `People.suppress(now, email=..., reason=...)`: a hard bounce


class Claimed(Protocol):
    """A claimed row of either queue: an email (`Due`) or a webhook (`WebhookDue`)."""

    @property
    def id(self) -> int: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def user(self) -> dict[str, Any]: ...
    @property
    def attempts(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...


def backoff(attempts: int, first: timedelta, ceiling: timedelta, jitter: float) -> timedelta:
    """Exponential backoff with jitter: 1x, 2x, 4x ... the first delay, capped, then scaled
    into [50%, 100%] by `jitter` in [0, 1) so that retries from one outage spread out."""
    delay: timedelta = min(ceiling, first * 2 ** max(attempts - 1, 0))
    scaled: timedelta = delay * (0.5 + jitter / 2)
    return scaled


class Outcomes:
    def __init__(self, retry: RetryConfig, random: Callable[[], float], suppress: Suppress):
        self.retry = retry
        self.random = random  # jitter for retries; tests pass a fixed one
        self.suppress = suppress

    def sent(self, item: Claimed, now: datetime, receipt: str) -> Finish:
        log.info("sent %s to user %s (%s)", item.rule_id, item.user["id"], receipt)
        return Finish(item.id, Status.SENT, now, reply=receipt)

    def failed_send(self, item: Claimed, now: datetime, exc: Exception) -> Finish:
        """The outcome of a send that raised `exc`; a bounce is suppressed at once."""
        if isinstance(exc, PermanentSendError):
            if exc.bounce and isinstance(item, Due):  # an address that does not exist
                self.suppress(now, email=item.email_to, reason=SkipReason.BOUNCED.value)
            return self.fail(item, now, f"rejected: {exc.reply}", reply=exc.reply)
        if isinstance(exc, UncertainSendError):
            return self._uncertain(item, now, exc.reply)
        if isinstance(exc, TransportSetupError):
            log.error("the mail transport cannot send as configured: %s", exc.reply)
            return self._retry(item, now, exc.reply)
        if isinstance(exc, TransientSendError):
            return self._retry(item, now, exc.reply)
        # An unclassified transport fault: retry it.
        return self._retry(item, now, f"{type(exc).__name__}: {exc}")

    def _retry(self, item: Claimed, now: datetime, reply: str) -> Finish:
        retry = self.retry
        if now - item.created_at >= retry.give_up_after:
            reason = f"gave up after {item.attempts} attempts: {reply}"
            return self.fail(item, now, reason, reply=reply)
        delay = backoff(item.attempts, retry.first_delay, retry.max_delay, self.random())
        log.warning(
            "delivery %s (%s, user %s) will be retried in %s: %s",
            item.id,
            item.rule_id,
            item.user["id"],
            delay,
            reply,
        )
        return Finish(
            item.id,
            Status.RETRYING,
            now,
            reason=f"temporary failure: {reply}",
            reply=reply,
            send_at=now + delay,
        )

    def _uncertain(self, item: Claimed, now: datetime, reply: str) -> Finish:
        """The server may have the message: at most once unless the operator opted in."""
        if self.retry.resend_unknown:
            return self._retry(item, now, reply)
        reason = f"connection lost after the message was handed over: {reply}"
        log.error("delivery %s (%s) is unknown: %s", item.id, item.rule_id, reason)
        return Finish(item.id, Status.UNKNOWN, now, reason=reason, reply=reply)

    def fail(
        self, item: Claimed, now: datetime, reason: str, *, reply: str | None = None
    ) -> Finish:
        log.error(
            "delivery %s (%s, user %s) failed: %s", item.id, item.rule_id, item.user["id"], reason
        )
        return Finish(item.id, Status.FAILED, now, reason=reason, reply=reply)
