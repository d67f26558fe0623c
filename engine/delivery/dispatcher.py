"""Dispatch: claim due emails, render, hand them to the transport, and record each outcome
with retries, backoff and a buffer for what a database outage kept from being written.

Several SMTP sessions send in parallel (`mail.smtp.sessions`, threads, each with a connection
of its own); other transports send from the calling thread. A claim goes `claimed` for the
batch; each session then moves one row at a time to `sending`, just before the hand-over, in
the same transaction that records the outcome of the message it sent before (`Outbox.advance`):
a crash leaves in doubt at most one message per session (the one in flight, or the one sent
whose outcome was not yet written), never the whole batch."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from email.message import EmailMessage
from functools import partial
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from engine.clock import Clock
from engine.config import RetryConfig
from engine.delivery.commits import GroupCommit
from engine.delivery.compose import Composer
from engine.delivery.feed import Feed
from engine.delivery.mail import MailTransport, SessionTransport
from engine.delivery.outcome import Outcomes, Suppress, backoff
from engine.errors import TemplateError
from engine.model import Due, Status
from engine.rules.language import RuleSet
from engine.store.outbox import Finish, Step
from engine.telemetry.metrics import Metrics

log = logging.getLogger("lifecycle.runner")

__all__ = ["Dispatcher", "OutboxStore", "Suppress", "backoff", "recover"]


class OutboxStore(Protocol):
    """What the dispatcher needs of the database (`engine.store.outbox.Outbox`; tests may
    hand it `engine.store.testing.MemoryOutbox`)."""

    def claim_due(self, now: datetime, limit: int = 100) -> list[Due]: ...
    def advance(self, steps: Sequence[Step]) -> list[bool]: ...
    # The single steps `advance` combines (tests and tools drive rows through them).
    def start_sending(self, delivery_id: int, now: datetime) -> bool: ...
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
    def release_claims(self, ids: Sequence[int], now: datetime) -> int: ...
    def requeue_stale_claims(self, now: datetime, lease: timedelta) -> int: ...
    def expire_stale_claims(self, now: datetime, lease: timedelta, *, resend: bool) -> int: ...


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
        sessions: int = 1,
    ) -> None:
        self.outbox = outbox
        self.suppress = suppress
        self.rules = rules
        self.composer = composer
        self.transport = transport
        self.retry = retry
        self.random = random  # jitter for retries; tests pass a fixed one
        self.metrics = metrics
        self.sessions = sessions  # SMTP sessions in parallel (mail.smtp.sessions)
        # Through self: tests and `Runner.using` read and replace `random` and `suppress`.
        self.outcomes = Outcomes(
            retry, lambda: self.random(), lambda *a, **k: self.suppress(*a, **k)
        )
        # Ledger writes a database outage interrupted mid-dispatch (a send's outcome, claims
        # to hand back), applied by the next dispatch that reaches the database: a message
        # the server accepted is then `sent`, not `unknown`, and the batch is not held up
        # for a whole lease. Sessions append from their threads (list.append is atomic).
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
        sends in flight and hands the rest of its claimed batch back to the queue."""
        clock = clock_of(now)
        outcome: Counter[str] = Counter()
        self._write_what_an_outage_held_back()
        outcome.update(recover(self.outbox, self.retry, clock()))
        feed = Feed(
            self.outbox,
            clock,
            batch_size=batch_size,
            should_stop=should_stop,
            renew_after=self.retry.sending_lease / 2,
        )
        commits = GroupCommit(self.outbox.advance)
        # Parallel sessions need a transport whose sessions belong to threads (SMTP); any
        # other sends from the calling thread, one message at a time.
        sessions = self.sessions if isinstance(self.transport, SessionTransport) else 1
        if sessions == 1:  # from the calling thread: no thread for one session
            outcome.update(self._ending_cleanly(feed, commits, clock))
            return outcome
        sessions = min(sessions, feed.prime())
        if sessions == 0:
            return outcome
        counts, errors = self._in_parallel(feed, commits, clock, sessions)
        for count in counts:
            outcome.update(count)
        if errors:
            raise errors[0]
        return outcome

    def _ending_cleanly(
        self, feed: Feed, commits: GroupCommit, clock: Callable[[], datetime]
    ) -> Counter[str]:
        """A session; when it fails, the other sessions stop after their send in flight and
        the claimed rows nobody took go back to the queue."""
        try:
            return self._session(feed, commits, clock)
        except BaseException:
            self._hand_back(feed.abandon(), clock())
            raise

    def _in_parallel(
        self, feed: Feed, commits: GroupCommit, clock: Callable[[], datetime], sessions: int
    ) -> tuple[list[Counter[str]], list[BaseException]]:
        counts: list[Counter[str]] = []
        errors: list[BaseException] = []

        def run() -> None:
            try:
                counts.append(self._ending_cleanly(feed, commits, clock))
            except BaseException as exc:  # noqa: BLE001 - raised by dispatch() once all end
                errors.append(exc)

        threads = [
            threading.Thread(target=run, name=f"lifecycle-smtp-{n + 1}", daemon=True)
            for n in range(sessions)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return counts, errors

    def _hand_back(self, ids: Sequence[int], now: datetime) -> None:
        """Claimed rows nobody will send now: back to the queue, or, with the database
        away, at the next dispatch (the stale-claim recovery would take a whole lease)."""
        if not ids:
            return
        try:
            self.outbox.release_claims(ids, now)
        except SQLAlchemyError:
            self._unwritten.append(partial(self.outbox.release_claims, list(ids), now))

    def _session(
        self, feed: Feed, commits: GroupCommit, clock: Callable[[], datetime]
    ) -> Counter[str]:
        """One SMTP session's loop: prepare the next row (render, build the message: outside
        any transaction), then in one transaction write the outcomes held so far and move
        the row to `sending`, send it, and hold its outcome for the next step. Only one row
        of the session is ever `sending` unrecorded: the one in flight, or the one sent."""
        transport = self.transport
        outcome: Counter[str] = Counter()
        held: list[Finish] = []  # outcomes not yet written: at most one of a send
        with transport.session() if isinstance(transport, SessionTransport) else nullcontext():
            try:
                while (taken := feed.next()) is not None:
                    item, now = taken
                    try:
                        prepared = self._prepare(item, now)
                        if isinstance(prepared, Finish):
                            held.append(prepared)  # nothing was sent: the row is `claimed`
                            continue
                        writing, held = held, []  # kept for later by _advance if it fails
                        started = self._advance(commits, writing, item.id, now, outcome)
                    except SQLAlchemyError:
                        # The database went away: this row and the rest were never sent.
                        self._hand_back([item.id, *feed.abandon()], now)
                        raise
                    if not started:
                        log.warning(
                            "delivery %s: the claim expired before sending; not sent", item.id
                        )
                        continue  # another dispatcher owns the row
                    held = [self._hand_over(item, prepared, clock)]
            finally:
                if held:
                    self._advance(commits, held, None, clock(), outcome)
        return outcome

    def _advance(
        self,
        commits: GroupCommit,
        held: list[Finish],
        start: int | None,
        now: datetime,
        outcome: Counter[str],
    ) -> bool:
        """Write the held outcomes and start `start`, in one transaction (shared with other
        sessions' steps); with the database away, the outcomes are kept for the next
        dispatch (and the error raised)."""
        step = Step(tuple(held), start, now)
        try:
            started = commits.commit(step)
        except SQLAlchemyError:
            if held:
                self._unwritten.append(partial(self.outbox.advance, [Step(step.finishes)]))
            raise
        for finish in held:
            outcome[finish.status.value] += 1
            if self.metrics is not None:
                self.metrics.deliveries.labels(finish.status.value, "email").inc()
        return started

    def _write_what_an_outage_held_back(self) -> None:
        while self._unwritten:
            self._unwritten[0]()  # raises while the database is still away: kept for later
            self._unwritten.pop(0)

    def _prepare(self, item: Due, now: datetime) -> EmailMessage | Finish:
        """Render and build one claimed email to be handed over at `now`; a failure's
        outcome when it cannot be."""
        try:
            rule = self.rules.get(item.rule_id)
        except KeyError:
            return self.outcomes.fail(item, now, f"rule {item.rule_id!r} is no longer defined")
        try:
            return self.composer.message(
                rule,
                item.email_template,
                item.user,
                (item.anchor_at, item.anchor_properties),
                (item.guide_id, item.guide_expires_at),
                to=item.email_to,
                message_id=item.message_id,
                now=now,
            )
        except TemplateError as exc:
            return self.outcomes.fail(item, now, f"render error: {exc}")

    def _hand_over(self, item: Due, message: EmailMessage, clock: Callable[[], datetime]) -> Finish:
        """Send one message (its row is `sending`); its outcome, stamped with the time the
        send ended."""
        sent = time.perf_counter()
        try:
            receipt = self.transport.send(message)
        except Exception as exc:  # noqa: BLE001 - every transport fault has an outcome
            return self.outcomes.failed_send(item, self._ended(sent, clock), exc)
        return self.outcomes.sent(item, self._ended(sent, clock), receipt)

    def _ended(self, sent: float, clock: Callable[[], datetime]) -> datetime:
        if self.metrics is not None:  # failed sends take time too (timeouts most of all)
            self.metrics.send_duration.observe(time.perf_counter() - sent)
        return clock()


class Stale(Protocol):
    """What recovering abandoned claims needs of a queue (the emails' or the webhooks')."""

    def requeue_stale_claims(self, now: datetime, lease: timedelta) -> int: ...
    def expire_stale_claims(self, now: datetime, lease: timedelta, *, resend: bool) -> int: ...


def recover(outbox: Stale, retry: RetryConfig, now: datetime) -> Counter[str]:
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


def clock_of(now: datetime | Clock) -> Callable[[], datetime]:
    """A fixed `now` (a one-shot tick, a replay's simulated time) or a clock read at each
    claim and send, so that a drain longer than the sending lease stamps each row with the
    time it was really claimed and handed over (a daemon)."""
    if isinstance(now, datetime):
        return lambda: now
    return now.now
