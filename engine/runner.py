"""One tick: evaluate every enabled rule -> write ledger rows -> dispatch due emails.

The dry run goes through the same evaluation and decisions and stops before writing. `now` is
passed in; nothing below this module reads the clock."""

from __future__ import annotations

import copy
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from engine.caps import WINDOW, FrequencyCap
from engine.config import Config
from engine.decide import Candidate, Planned, anchor_name, decide
from engine.decide_sql import Settings, fits_in_sql, in_python
from engine.errors import TemplateError
from engine.metrics import Metrics
from engine.model import SkipReason, Status
from engine.render import RenderedEmail, Renderer, email_context
from engine.rules import Rule, RuleSet
from engine.store import Due, Store
from engine.tokens import unsubscribe_url
from engine.transports.mail import (
    Envelope,
    MailTransport,
    PermanentSendError,
    SessionTransport,
    TransientSendError,
    TransportSetupError,
    UncertainSendError,
    build_message,
)

log = logging.getLogger("lifecycle.runner")


def backoff(attempts: int, first: timedelta, ceiling: timedelta, jitter: float) -> timedelta:
    """Exponential backoff with jitter: 1x, 2x, 4x ... the first delay, capped, then scaled
    into [50%, 100%] by `jitter` in [0, 1) so that retries from one outage spread out."""
    delay: timedelta = min(ceiling, first * 2 ** max(attempts - 1, 0))
    scaled: timedelta = delay * (0.5 + jitter / 2)
    return scaled


@dataclass
class TickReport:
    now: datetime
    written: Counter[str] = field(default_factory=Counter)  # "rule_id/status" -> rows
    dispatched: Counter[str] = field(default_factory=Counter)  # status -> emails

    def by_rule(self) -> dict[str, Counter[str]]:
        out: dict[str, Counter[str]] = {}
        for key, count in self.written.items():
            rule_id, status = key.split("/")
            out.setdefault(rule_id, Counter())[status] += count
        return out


@dataclass(frozen=True)
class Preview:
    """A dry-run row: the planned delivery and, for emails, what it would look like."""

    planned: Planned
    rendered: RenderedEmail | None
    render_error: str | None


class Runner:
    def __init__(
        self,
        *,
        store: Store,
        rules: RuleSet,
        renderer: Renderer,
        transport: MailTransport,
        config: Config,
        random: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.rules = rules
        self.renderer = renderer
        self.transport = transport
        self.config = config
        self.random = random  # jitter for retries; tests pass a fixed one
        self.domain = config.mail.domain  # parsing the From address per row cost 30% of a tick
        self.metrics = metrics  # None: nothing to export (the CLI's one-shot commands)
        # Ledger writes a database outage interrupted mid-dispatch (a send's outcome, claims
        # to hand back), applied by the next dispatch that reaches the database: a message
        # the server accepted is then `sent`, not `unknown`, and the batch is not held up
        # for a whole lease.
        self._unwritten: list[Callable[[], object]] = []

    def using(
        self,
        *,
        store: Store | None = None,
        rules: RuleSet | None = None,
        transport: MailTransport | None = None,
    ) -> Runner:
        """The same runner over another store, rule set or transport: replays tick against an
        isolated store, diffs against another rule set, simulations through a fake mailer."""
        clone = copy.copy(self)
        clone.store = store or self.store
        clone.rules = rules or self.rules
        clone.transport = transport or self.transport
        clone._unwritten = []  # another store's writes must not land in this one
        return clone

    # ---- evaluation --------------------------------------------------------------------

    # A tick writes in SQL what SQL can decide; tests turn it off to compare with decide().
    set_based = True

    def plan(
        self,
        now: datetime,
        *,
        rule_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        ordered: bool = False,
    ) -> Iterator[list[Planned]]:
        """Batches of what a tick at `now` would write, rule by rule."""
        cap = self._cap(now)
        for rule in self._selected(rule_ids):
            yield from self._plan_rule(rule, now, cap, user_ids=user_ids, ordered=ordered)

    def _plan_rule(
        self,
        rule: Rule,
        now: datetime,
        cap: FrequencyCap,
        *,
        user_ids: Sequence[str] | None = None,
        ordered: bool = False,
        where: Sequence[ColumnElement[bool]] = (),
    ) -> Iterator[list[Planned]]:
        batches = self.store.candidates(rule, now, user_ids=user_ids, ordered=ordered, where=where)
        for batch in batches:
            yield cap.apply(rule, [self.decide(rule, c, now) for c in batch])

    def _selected(self, rule_ids: Sequence[str] | None) -> list[Rule]:
        """Highest priority first, so that the frequency cap skips the lowest first."""
        rules = (
            list(self.rules.enabled) if rule_ids is None else [self.rules.get(r) for r in rule_ids]
        )
        return sorted(rules, key=lambda rule: -rule.priority)

    def _cap(self, now: datetime) -> FrequencyCap:
        # New emails go out within a day of `now` (quiet hours shift them by less), so the
        # emails that can count against them lie within a day either side of that.
        def fetch(user_ids: Sequence[str]) -> dict[str, list[datetime]]:
            return self.store.email_times(user_ids, now - WINDOW, now + 2 * WINDOW)

        return FrequencyCap(self.config.mail.daily_cap, fetch)

    def _settings(self) -> Settings:
        mail = self.config.mail
        return Settings(
            guide_ttl=self.config.defaults.guide_ttl,
            domain=self.domain,
            quiet_hours=mail.quiet_hours,
            daily_cap=mail.daily_cap,
            default_timezone=self.config.defaults.timezone,
        )

    def decide(self, rule: Rule, candidate: Candidate, now: datetime) -> Planned:
        """What happens to one firing under this config (explain asks the same question)."""
        return decide(
            rule,
            candidate,
            now,
            guide_ttl=self.config.defaults.guide_ttl,
            domain=self.domain,
            quiet_hours=self.config.mail.quiet_hours,
            default_timezone=self.config.defaults.timezone,
        )

    def dry_run(
        self,
        now: datetime,
        *,
        rule_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        render: bool = True,
    ) -> list[Preview]:
        """What `tick(now)` would write, rendered; writes nothing at all."""
        previews = []
        for batch in self.plan(now, rule_ids=rule_ids, user_ids=user_ids, ordered=True):
            for planned in batch:
                previews.append(self._preview(planned) if render else Preview(planned, None, None))
        return previews

    def _preview(self, planned: Planned) -> Preview:
        if not planned.email_template or planned.status is Status.HELD_OUT:
            return Preview(planned, None, None)
        try:
            return Preview(planned, self._render_planned(planned), None)
        except TemplateError as exc:
            return Preview(planned, None, str(exc))

    def _render_planned(self, p: Planned) -> RenderedEmail:
        rule = self.rules.get(p.rule_id)
        assert p.email_template is not None
        return self.renderer.render(
            p.email_template,
            self._context(
                rule,
                p.candidate.user,
                p.anchor_at,
                p.candidate.anchor_properties,
                p.guide_id,
                p.guide_expires_at,
            ),
        )

    # ---- the tick ----------------------------------------------------------------------

    def tick(
        self,
        now: datetime,
        *,
        dispatch: bool = True,
        rule_ids: Sequence[str] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> TickReport:
        """Evaluate the enabled rules (or `rule_ids`: the daemon passes the rules it holds the
        lease of) and dispatch. `should_stop` is asked between rules: each rule's writes are
        committed on their own, so stopping early loses nothing."""
        started = time.perf_counter()
        report = TickReport(now)
        cap = self._cap(now)
        for rule in self._selected(rule_ids):
            if should_stop():
                break
            try:
                self._evaluate(rule, now, cap, report)
            except Exception:
                # One broken rule (a database error on its query) must not stop the others.
                log.exception(
                    "rule %s failed to evaluate at %s", rule.id, self.rules.where(rule.id)
                )
                report.written[f"{rule.id}/error"] += 1
        written = sum(n for key, n in report.written.items() if not key.endswith("/error"))
        if written >= self.store.ANALYZE_AFTER_ROWS:
            try:
                self.store.analyze_ledger()
            except Exception:
                # The rows are committed; fresh statistics only keep the next plans good.
                log.exception("refreshing the ledger's statistics after %d rows failed", written)
        if dispatch:
            report.dispatched.update(self.dispatch(now, should_stop=should_stop))
        if self.metrics is not None:
            self.metrics.ticks.inc()
            self.metrics.tick_duration.observe(time.perf_counter() - started)
        return report

    def _evaluate(self, rule: Rule, now: datetime, cap: FrequencyCap, report: TickReport) -> None:
        """Write the rule's rows: in SQL where SQL can decide them (engine/decide_sql.py),
        through `decide()` and the cap for the rest. Both give the rows the dry run plans."""
        if self.metrics is not None:
            self.metrics.rule_evaluations.labels(rule.id).inc()
        # Earlier rules' emails are in the ledger now, where the cap reads them afresh: it
        # never saw those written in SQL.
        cap.forget()
        rest: tuple[ColumnElement[bool], ...] = ()
        settings = self._settings()
        if self.set_based and fits_in_sql(rule):
            python = in_python(rule, settings, now)
            in_sql = () if python is None else (~python,)
            decided = self.store.record_decided(rule, now, settings, in_sql)
            self._count(rule, report, decided.statuses, decided.guide_flags)
            if python is None:
                return
            rest = (python,)
        for planned in self._plan_rule(rule, now, cap, where=rest):
            written = self.store.record(planned, now)
            statuses = Counter(p.status.value for p in written)
            self._count(rule, report, statuses, sum(1 for p in written if p.sets_guide))

    def _count(
        self, rule: Rule, report: TickReport, statuses: Counter[str], guide_flags: int
    ) -> None:
        for status, rows in statuses.items():
            report.written[f"{rule.id}/{status}"] += rows
        if self.metrics is not None:
            if statuses:
                self.metrics.rule_matches.labels(rule.id).inc(statuses.total())
            if guide_flags:  # the flag is written with the row: set now
                self.metrics.deliveries.labels("sent", "guide").inc(guide_flags)

    def dispatch(
        self,
        now: datetime,
        *,
        batch_size: int = 100,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Counter[str]:
        """Send every due email. A render failure fails that one delivery, visibly.

        `should_stop` is asked before each claim and each send: a stopping daemon finishes the
        send in flight and hands the rest of its claimed batch back to the queue."""
        transport = self.transport
        with transport.session() if isinstance(transport, SessionTransport) else nullcontext():
            return self._dispatch(now, batch_size, should_stop)

    def _dispatch(
        self, now: datetime, batch_size: int, should_stop: Callable[[], bool]
    ) -> Counter[str]:
        outcome: Counter[str] = Counter()
        self._write_what_an_outage_held_back()
        retry = self.config.mail.retry
        requeued = self.store.requeue_stale_claims(now, retry.sending_lease)
        if requeued:
            log.warning(
                "%d deliveries claimed by a dispatcher that stopped before sending them are "
                "queued again",
                requeued,
            )
            outcome["requeued"] += requeued
        stale = self.store.expire_stale_claims(
            now, retry.sending_lease, resend=retry.resend_unknown
        )
        if stale:
            log.warning(
                "%d deliveries were left `sending` by a dispatcher that stopped; marked %s",
                stale,
                "pending (resend_unknown)" if retry.resend_unknown else "unknown",
            )
            outcome["requeued" if retry.resend_unknown else Status.UNKNOWN.value] += stale
        while not should_stop() and (due := self.store.claim_due(now, batch_size)):
            for index, item in enumerate(due):
                if should_stop():
                    released = self.store.release_claims([d.id for d in due[index:]], now)
                    log.info("stopping: %d claimed deliveries handed back unsent", released)
                    return outcome
                try:
                    status = self._send(item, now)
                except SQLAlchemyError:
                    # The database went away: the rest of the batch was never sent.
                    rest = [d.id for d in due[index:]]
                    self._unwritten.append(partial(self.store.release_claims, rest, now))
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
            self.store.mark(delivery_id, status, now, **fields)
        except SQLAlchemyError:
            self._unwritten.append(partial(self.store.mark, delivery_id, status, now, **fields))
            raise

    def _send(self, item: Due, now: datetime) -> Status | None:
        """Render and send one claimed email; its new status, or None when it was not ours."""
        try:
            rule = self.rules.get(item.rule_id)
        except KeyError:
            return self._fail(item, now, f"rule {item.rule_id!r} is no longer defined")
        context = self._context(
            rule,
            item.user,
            item.anchor_at,
            item.anchor_properties,
            item.guide_id,
            item.guide_expires_at,
        )
        try:
            rendered = self.renderer.render(item.email_template, context)
        except TemplateError as exc:
            return self._fail(item, now, f"render error: {exc}")
        # The token is timestamped: the header must carry the very link the bodies show.
        unsubscribe = str(context["unsubscribe_url"])
        message = build_message(self._envelope(item, rendered, now, unsubscribe))
        if not self.store.start_sending(item.id, now):
            log.warning("delivery %s: the claim expired before sending; not sent", item.id)
            return None
        try:
            sent = time.perf_counter()
            try:
                receipt = self.transport.send(message)
            finally:  # failed sends take time too (timeouts most of all)
                if self.metrics is not None:
                    self.metrics.send_duration.observe(time.perf_counter() - sent)
        except PermanentSendError as exc:
            if exc.bounce:
                self.store.suppress(now, email=item.email_to, reason=SkipReason.BOUNCED.value)
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
        retry = self.config.mail.retry
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
        if self.config.mail.retry.resend_unknown:
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

    def _envelope(
        self, item: Due, rendered: RenderedEmail, now: datetime, unsubscribe_url: str
    ) -> Envelope:
        mail = self.config.mail
        return Envelope(
            sender=mail.from_address,
            to=item.email_to,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=item.message_id,
            date=now,
            reply_to=mail.reply_to,
            unsubscribe_url=unsubscribe_url,
            unsubscribe_mailto=mail.unsubscribe_mailto,
        )

    def _unsubscribe(self, user_id: str) -> str:
        api = self.config.api
        return unsubscribe_url(api.public_url, api.secret_key, user_id)

    def _context(
        self,
        rule: Rule,
        user: dict[str, Any],
        anchor_at: datetime,
        anchor_properties: dict[str, Any],
        guide_id: str | None,
        guide_expires_at: datetime | None,
    ) -> dict[str, Any]:
        return email_context(
            user=user,
            rule_id=rule.id,
            rule_description=rule.description,
            anchor_name=anchor_name(rule),
            anchor_at=anchor_at,
            anchor_properties=anchor_properties,
            guide_id=guide_id,
            guide_expires_at=guide_expires_at,
            links=self.config.links,
            brand=self.config.brand.model_dump(),
            unsubscribe_url=self._unsubscribe(str(user["id"])),
        )
