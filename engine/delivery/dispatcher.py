"""Dispatch: claim due emails, render, hand them to the transport, and record each outcome
with retries, backoff and a buffer for what a database outage kept from being written.

A claim goes `claimed` for the batch, then `sending` one row at a time just before the
hand-over, so a crash leaves in doubt the one message in flight, not the whole batch."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from engine.clock import Clock
from engine.config import RetryConfig
from engine.delivery.compose import Composer
from engine.delivery.mail import (
    MailTransport,
    PermanentSendError,
    SessionTransport,
    TransientSendError,
    TransportSetupError,
    UncertainSendError,
    build_message,
)
from engine.errors import TemplateError
from engine.model import Due, SkipReason, Status
from engine.rules.language import RuleSet
from engine.telemetry.metrics import Metrics

log = logging.getLogger("lifecycle.runner")


class OutboxStore(Protocol):
    """What the dispatcher needs of the database (`engine.store.outbox.Outbox`; tests may
    hand it `engine.store.testing.MemoryOutbox`)."""

    def claim_due(self, now: datetime, limit: int = 100) -> list[Due]: ...
    def start_sending(self, delivery_id: int, now: datetime) -> bool: ...
    def release_claims(self, ids: Sequence[int], now: datetime) -> int: ...
    def requeue_stale_claims(self, now: datetime, lease: timedelta) -> int: ...
    def expire_stale_claims(self, now: datetime, lease: timedelta, *, resend: bool) -> int: ...
    def mark(
        self,
        delivery_id: int,
        status: Status,
        now: datetime,
        *,
        reason: str | None = None,
        reply: str | None = None,
        send_at: datetime | None = None,
    ) -> None: ...


Suppress = Callable[..., None]  # `People.suppress(now, email=..., reason=...)`: a hard bounce


def backoff(attempts: int, first: timedelta, ceiling: timedelta, jitter: float) -> timedelta:
    """Exponential backoff with jitter: 1x, 2x, 4x ... the first delay, capped, then scaled
    into [50%, 100%] by `jitter` in [0, 1) so that retries from one outage spread out."""
    delay: timedelta = min(ceiling, first * 2 ** max(attempts - 1, 0))
    scaled: timedelta = delay * (0.5 + jitter / 2)
    return scaled


class Dispatcher:
    def __init__(
        self,
        *,
        outbox: OutboxStore,
        suppress: Suppress,
        rules: RuleSet,
        composer: Composer,
        transport: MailTransport,
        retry: RetryConfig,
        random: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
    ) -> None:
        self.outbox = outbox
        self.suppress = suppress
        self.rules = rules
        self.composer = composer
        self.transport = transport
        self.retry = retry
        self.random = random  # jitter for retries; tests pass a fixed one
        self.metrics = metrics
        # Ledger writes a database outage interrupted mid-dispatch (a send's outcome, claims
        # to hand back), applied by the next dispatch that reaches the database: a message
        # the server accepted is then `sent`, not `unknown`, and the batch is not held up
        # for a whole lease.
        self._unwritten: list[Callable[[], object]] = []

    def dispatch(
        self,
        now: datetime | Clock,
        *,
        batch_size: int = 100,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Counter[str]:
        """Send every due email. A render failure fails that one delivery, visibly.

        `should_stop` is asked before each claim and each send: a stopping daemon finishes the
        send in flight and hands the rest of its claimed batch back to the queue."""
        transport = self.transport
        with transport.session() if isinstance(transport, SessionTransport) else nullcontext():
            return self._dispatch(_clock(now), batch_size, should_stop)

    def _dispatch(
        self, clock: Callable[[], datetime], batch_size: int, should_stop: Callable[[], bool]
    ) -> Counter[str]:
        outcome: Counter[str] = Counter()
        self._write_what_an_outage_held_back()
        outcome.update(recover(self.outbox, self.retry, clock()))
        # A claim is stamped once, when the batch is claimed: a batch still in hand after
        # half the lease hands back what it has not sent and claims afresh, so that another
        # replica's recovery never takes the rows of a live dispatcher for abandoned ones.
        renew_after = self.retry.sending_lease / 2
        while not should_stop() and (due := self.outbox.claim_due(claimed := clock(), batch_size)):
            for index, item in enumerate(due):
                if should_stop():
                    released = self.outbox.release_claims([d.id for d in due[index:]], clock())
                    log.info("stopping: %d claimed deliveries handed back unsent", released)
                    return outcome
                now = clock()
                if index and now - claimed >= renew_after:
                    released = self.outbox.release_claims([d.id for d in due[index:]], now)
                    log.info("%d claimed deliveries handed back to be claimed afresh", released)
                    break
                try:
                    status = self._send(item, now, clock)
                except SQLAlchemyError:
                    # The database went away: the rest of the batch was never sent.
                    rest = [d.id for d in due[index:]]
                    self._unwritten.append(partial(self.outbox.release_claims, rest, now))
                    raise
                if status is None:
                    continue  # the claim expired under us: another dispatcher owns the row
                outcome[status.value] += 1
                if self.metrics is not None:
                    self.metrics.deliveries.labels(status.value, "email").inc()
        return outcome

    def _write_what_an_outage_held_back(self) -> None:
        while self._unwritten:
            self._unwritten[0]()  # raises while the database is still away: kept for later
            self._unwritten.pop(0)

    def _mark(self, delivery_id: int, status: Status, now: datetime, **fields: Any) -> None:
        try:
            self.outbox.mark(delivery_id, status, now, **fields)
        except SQLAlchemyError:
            self._unwritten.append(partial(self.outbox.mark, delivery_id, status, now, **fields))
            raise

    def _send(self, item: Due, now: datetime, clock: Callable[[], datetime]) -> Status | None:
        """Render and send one claimed email; its new status, or None when it was not ours.
        `now` is when it is handed over; its outcome is stamped with `clock()` after that."""
        try:
            rule = self.rules.get(item.rule_id)
        except KeyError:
            return self._fail(item, now, f"rule {item.rule_id!r} is no longer defined")
        context = self.composer.context(
            rule,
            item.user,
            item.anchor_at,
            item.anchor_properties,
            item.guide_id,
            item.guide_expires_at,
        )
        try:
            rendered = self.composer.render(item.email_template, context)
        except TemplateError as exc:
            return self._fail(item, now, f"render error: {exc}")
        # The token is timestamped: the header must carry the very link the bodies show.
        unsubscribe = str(context["unsubscribe_url"])
        envelope = self.composer.envelope(
            item.email_to, item.message_id, rendered, now, unsubscribe
        )
        message = build_message(envelope)
        if not self.outbox.start_sending(item.id, now):
            log.warning("delivery %s: the claim expired before sending; not sent", item.id)
            return None
        return self._hand_over(item, message, clock)

    def _hand_over(self, item: Due, message: Any, clock: Callable[[], datetime]) -> Status:
        try:
            sent = time.perf_counter()
            try:
                receipt = self.transport.send(message)
            finally:  # failed sends take time too (timeouts most of all)
                now = clock()  # the outcome is stamped with the time the send ended
                if self.metrics is not None:
                    self.metrics.send_duration.observe(time.perf_counter() - sent)
        except PermanentSendError as exc:
            if exc.bounce:
                self.suppress(now, email=item.email_to, reason=SkipReason.BOUNCED.value)
            return self._fail(item, now, f"rejected: {exc.reply}", reply=exc.reply)
        except UncertainSendError as exc:
            return self._uncertain(item, now, exc.reply)
        except TransportSetupError as exc:
            log.error("the mail transport cannot send as configured: %s", exc.reply)
            return self._retry(item, now, exc.reply)
        except TransientSendError as exc:
            return self._retry(item, now, exc.reply)
        except Exception as exc:  # noqa: BLE001 - an unclassified transport fault: retry it
            return self._retry(item, now, f"{type(exc).__name__}: {exc}")
        log.info("sent %s to user %s (%s)", item.rule_id, item.user["id"], receipt)
        self._mark(item.id, Status.SENT, now, reply=receipt)
        return Status.SENT

    def _retry(self, item: Due, now: datetime, reply: str) -> Status:
        retry = self.retry
        if now - item.created_at >= retry.give_up_after:
            reason = f"gave up after {item.attempts} attempts: {reply}"
            return self._fail(item, now, reason, reply=reply)
        delay = backoff(item.attempts, retry.first_delay, retry.max_delay, self.random())
        log.warning(
            "delivery %s (%s, user %s) will be retried in %s: %s",
            item.id,
            item.rule_id,
            item.user["id"],
            delay,
            reply,
        )
        self._mark(
            item.id,
            Status.RETRYING,
            now,
            reason=f"temporary failure: {reply}",
            reply=reply,
            send_at=now + delay,
        )
        return Status.RETRYING

    def _uncertain(self, item: Due, now: datetime, reply: str) -> Status:
        """The server may have the message: at most once unless the operator opted in."""
        if self.retry.resend_unknown:
            return self._retry(item, now, reply)
        reason = f"connection lost after the message was handed over: {reply}"
        log.error("delivery %s (%s) is unknown: %s", item.id, item.rule_id, reason)
        self._mark(item.id, Status.UNKNOWN, now, reason=reason, reply=reply)
        return Status.UNKNOWN

    def _fail(self, item: Due, now: datetime, reason: str, *, reply: str | None = None) -> Status:
        log.error(
            "delivery %s (%s, user %s) failed: %s", item.id, item.rule_id, item.user["id"], reason
        )
        self._mark(item.id, Status.FAILED, now, reason=reason, reply=reply)
        return Status.FAILED


def recover(outbox: OutboxStore, retry: RetryConfig, now: datetime) -> Counter[str]:
    """Claims a stopped dispatcher left behind: unsent ones go back to the queue, those it
    was handing over become `unknown` (or, when the operator opted in, `pending`)."""
    outcome: Counter[str] = Counter()
    requeued = outbox.requeue_stale_claims(now, retry.sending_lease)
    if requeued:
        log.warning(
            "%d deliveries claimed by a dispatcher that stopped before sending them are "
            "queued again",
            requeued,
        )
        outcome["requeued"] += requeued
    stale = outbox.expire_stale_claims(now, retry.sending_lease, resend=retry.resend_unknown)
    if stale:
        log.warning(
            "%d deliveries were left `sending` by a dispatcher that stopped; marked %s",
            stale,
            "pending (resend_unknown)" if retry.resend_unknown else "unknown",
        )
        outcome["requeued" if retry.resend_unknown else Status.UNKNOWN.value] += stale
    return outcome


def _clock(now: datetime | Clock) -> Callable[[], datetime]:
    """A fixed `now` (a one-shot tick, a replay's simulated time) or a clock read at each
    claim and send, so that a drain longer than the sending lease stamps each row with the
    time it was really claimed and handed over (a daemon)."""
    if isinstance(now, datetime):
        return lambda: now
    return now.now
