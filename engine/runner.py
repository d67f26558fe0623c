"""One tick: evaluate every enabled rule -> write ledger rows -> dispatch due emails.

The dry run goes through the same evaluation and decisions and stops before writing. `now` is
passed in; nothing below this module reads the clock."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Select

from engine.clock import Clock
from engine.config import Config
from engine.decide.caps import WINDOW, FrequencyCap
from engine.decide.firing import Planned, decide
from engine.delivery.compose import Composer
from engine.delivery.dispatcher import Dispatcher
from engine.delivery.mail import MailTransport
from engine.delivery.render import RenderedEmail, Renderer
from engine.delivery.webhook_dispatch import WebhookDispatcher
from engine.delivery.webhook_http import HttpxSender, SimulatedSender, WebhookSender, host_of
from engine.errors import TemplateError
from engine.model import Status
from engine.rules.language import Rule, RuleSet
from engine.sql.candidates import candidates as candidates_query
from engine.sql.candidates import scope_kind
from engine.sql.ledger import Settings, flags_select
from engine.sql.prepared import RuleStatements, prepare
from engine.sql.touched import Watermark
from engine.store import Store
from engine.store.ledger import Ledger
from engine.store.marks import Mark
from engine.telemetry.metrics import Metrics

log = logging.getLogger("lifecycle.runner")

# Beyond this many touched users, a rule is evaluated in full: its window is then no larger
# than the list, and one range scan beats as many lookups.
FULL_ABOVE = 50_000


@dataclass
class TickReport:
    now: datetime
    written: Counter[str] = field(default_factory=Counter)  # "rule_id/status" -> rows
    dispatched: Counter[str] = field(default_factory=Counter)  # status -> emails
    webhooks: Counter[str] = field(default_factory=Counter)  # status -> webhooks
    # How each rule was evaluated: "full", "incremental" (over the touched users) or "idle"
    # (nobody touched: no statement ran) -> rules.
    evaluations: Counter[str] = field(default_factory=Counter)

    def count(
        self, rule_id: str, statuses: Counter[str], guide_flags: int, metrics: Metrics | None
    ) -> None:
        """Add one rule's written rows (and its guide flags, set with the rows)."""
        for status, rows in statuses.items():
            self.written[f"{rule_id}/{status}"] += rows
        if metrics is not None:
            if statuses:
                metrics.rule_matches.labels(rule_id).inc(statuses.total())
            if guide_flags:
                metrics.deliveries.labels("sent", "guide").inc(guide_flags)

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
    webhook_host: str | None = None  # a webhook row's receiver (its URL may be a secret)


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
        set_based: bool = True,
        incremental: bool = True,
        webhook_sender: WebhookSender | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.domain = config.mail.domain  # parsing the From address per row cost 30% of a tick
        self.metrics = metrics  # None: nothing to export (the CLI's one-shot commands)
        # A tick writes in SQL what SQL can decide; tests turn it off to compare with decide().
        self.set_based = set_based
        # Ticks read only what changed since each rule's mark; False (`--full`) re-reads every
        # rule's whole window, as the tests' oracle does.
        self.incremental = incremental
        self._fingerprints: dict[int, tuple[Rule, str]] = {}
        # Per (rule, kind of scope): the rule object and settings they were built for.
        self._statements: dict[tuple[str, str], tuple[Rule, Settings, RuleStatements]] = {}
        self.composer = Composer(renderer, config, store.directory)
        self.dispatcher = Dispatcher(
            outbox=store.outbox,
            suppress=store.people.suppress,
            rules=rules,
            composer=self.composer,
            transport=transport,
            retry=config.mail.retry,
            random=random,
            metrics=metrics,
            sessions=config.mail.smtp.sessions,
        )
        hooks = config.webhooks
        self.webhook_sender = webhook_sender or HttpxSender(
            connect=hooks.connect_timeout, read=hooks.read_timeout
        )
        self.webhooks = WebhookDispatcher(
            outbox=store.webhooks,
            rules=rules,
            composer=self.composer,
            sender=self.webhook_sender,
            secret=hooks.secret,
            retry=hooks.retry,
            pass_time=hooks.pass_time,
            random=random,
            metrics=metrics,
        )
        self._rules = rules
        self._decide = partial(
            decide,
            guide_ttl=config.defaults.guide_ttl,
            domain=self.domain,
            quiet_hours=config.mail.quiet_hours,
            default_timezone=config.defaults.timezone,
        )

    # A hot reload swaps the rules and the templates; the dispatcher sees the same ones.
    @property
    def rules(self) -> RuleSet:
        return self._rules

    @rules.setter
    def rules(self, rules: RuleSet) -> None:
        self._rules = rules
        self.dispatcher.rules = rules
        self.webhooks.rules = rules
        self._fingerprints.clear()  # the old rules' objects go with them
        self._statements.clear()

    @property
    def renderer(self) -> Renderer:
        return self.composer.renderer

    @renderer.setter
    def renderer(self, renderer: Renderer) -> None:
        self.composer.renderer = renderer

    @property
    def transport(self) -> MailTransport:
        return self.dispatcher.transport

    def using(
        self,
        *,
        store: Store | None = None,
        rules: RuleSet | None = None,
        transport: MailTransport | None = None,
    ) -> Runner:
        """The same runner over another store, rule set or transport: replays tick against an
        isolated store, diffs against another rule set, simulations through a fake mailer
        (and then no webhook reaches a real receiver either). Its dispatchers are new:
        another store's writes must not land in this one."""
        simulated = transport is not None or store is not None
        return Runner(
            store=store or self.store,
            rules=rules or self.rules,
            renderer=self.renderer,
            transport=transport or self.transport,
            config=self.config,
            random=self.dispatcher.random,
            metrics=self.metrics,
            set_based=self.set_based,
            incremental=self.incremental,
            webhook_sender=SimulatedSender() if simulated else self.webhook_sender,
        )

    def dispatch(
        self,
        now: datetime | Clock,
        *,
        batch_size: int = 100,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Counter[str]:
        """Send every due email (`engine.delivery.dispatcher`)."""
        return self.dispatcher.dispatch(now, batch_size=batch_size, should_stop=should_stop)

    def dispatch_webhooks(
        self, now: datetime | Clock, *, should_stop: Callable[[], bool] = lambda: False
    ) -> Counter[str]:
        """Send every due webhook, within `webhooks.pass_time`
        (`engine.delivery.webhook_dispatch`)."""
        return self.webhooks.dispatch(now, should_stop=should_stop)

    # ---- evaluation --------------------------------------------------------------------

    def plan(
        self,
        now: datetime,
        *,
        rule_ids: Sequence[str] | None = None,
        user_ids: Sequence[str] | None = None,
        ordered: bool = False,
    ) -> Iterator[list[Planned]]:
        """Batches of what a tick at `now` would write, rule by rule."""
        cap = frequency_cap(self.store.ledger, self.config.mail.daily_cap, now)
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
        query: Select[Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> Iterator[list[Planned]]:
        """`query` (with `params`) instead of the candidates at `now`: the tick's own."""
        if query is None:
            query = candidates_query(rule, now, user_ids=user_ids, ordered=ordered)
        batches = self.store.ledger.candidates(query, params)
        for batch in batches:
            yield cap.apply(rule, [self._decide(rule, c, now) for c in batch])

    def _selected(self, rule_ids: Sequence[str] | None) -> list[Rule]:
        """Highest priority first, so that the frequency cap skips the lowest first."""
        rules = (
            list(self.rules.enabled) if rule_ids is None else [self.rules.get(r) for r in rule_ids]
        )
        return sorted(rules, key=lambda rule: -rule.priority)

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
        if planned.sends_webhook:
            webhook = self.rules.get(planned.rule_id).send.webhook
            host = host_of(webhook.url) if webhook is not None else None
            return Preview(planned, None, None, host)
        if not planned.email_template or planned.status is Status.HELD_OUT:
            return Preview(planned, None, None)
        try:
            rule = self.rules.get(planned.rule_id)
            return Preview(planned, self.composer.render_planned(rule, planned), None)
        except TemplateError as exc:
            return Preview(planned, None, str(exc))

    # ---- the tick ----------------------------------------------------------------------

    def tick(
        self,
        now: datetime,
        *,
        dispatch: bool = True,
        rule_ids: Sequence[str] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        full: bool = False,
    ) -> TickReport:
        """Evaluate the enabled rules (or `rule_ids`: the daemon passes the rules it holds the
        lease of) and dispatch. `should_stop` is asked between rules: each rule's writes are
        committed on their own, so stopping early loses nothing. Each rule is evaluated over
        what changed since its mark, or in full (`full`, a new or changed rule, no mark)."""
        started = time.perf_counter()
        report = TickReport(now)
        cap = frequency_cap(self.store.ledger, self.config.mail.daily_cap, now)
        rules = self._selected(rule_ids)
        # Read before any rule is evaluated: what is ingested meanwhile is read again next time.
        watermark = self.store.marks.watermark()
        scopes = {} if full or not self.incremental else self._scopes(rules, now, watermark)
        evaluated: dict[str, Mark] = {}
        for rule in rules:
            if should_stop():
                break
            try:
                scope = scopes.get(rule.id)
                report.evaluations[_mode(scope)] += 1
                if scope is None or scope:
                    self._evaluate(rule, now, cap, report, scope)
                evaluated[rule.id] = Mark(self._fingerprint(rule), now, watermark)
            except Exception:
                # One broken rule (a database error on its query) must not stop the others.
                log.exception(
                    "rule %s failed to evaluate at %s", rule.id, self.rules.where(rule.id)
                )
                report.written[f"{rule.id}/error"] += 1
        # After the rules' writes: a crash before this line only makes the next tick re-read.
        self._save_marks(evaluated)
        written = sum(n for key, n in report.written.items() if not key.endswith("/error"))
        if written >= self.store.ledger.ANALYZE_AFTER_ROWS:
            try:
                self.store.ledger.analyze_ledger()
            except Exception:
                # The rows are committed; fresh statistics only keep the next plans good.
                log.exception("refreshing the ledger's statistics after %d rows failed", written)
        if dispatch:
            report.dispatched.update(self.dispatch(now, should_stop=should_stop))
            # After the emails: a slow receiver delays this tick's end, never an email.
            report.webhooks.update(self.dispatch_webhooks(now, should_stop=should_stop))
        if self.metrics is not None:
            self.metrics.ticks.inc()
            self.metrics.tick_duration.observe(time.perf_counter() - started)
        return report

    def _fingerprint(self, rule: Rule) -> str:
        """`rule.fingerprint`, kept per rule object (a reload brings new objects): hashing the
        definition at every tick was a third of an idle tick."""
        kept = self._fingerprints.get(id(rule))
        if kept is None or kept[0] is not rule:
            kept = self._fingerprints[id(rule)] = (rule, rule.fingerprint)
        return kept[1]

    def _save_marks(self, evaluated: dict[str, Mark]) -> None:
        try:
            self.store.marks.save(evaluated)
        except Exception:
            # The rows are committed; without the marks the next tick reads a little more.
            log.exception("saving the evaluation marks of %d rules failed", len(evaluated))

    def prune(self) -> int:
        """Drop the change log every enabled rule's mark has read (the daemon, after a tick)."""
        return self.store.marks.prune(rule.id for rule in self.rules.enabled)

    def _scopes(
        self, rules: Sequence[Rule], now: datetime, current: Watermark
    ) -> dict[str, list[str]]:
        """Per rule, the users to evaluate it for at `now`; a rule left out is evaluated for
        all of them: no mark, a changed definition, a clock behind its mark, or too many
        touched users to list (a full pass is then the cheaper plan)."""
        marks = self.store.marks.read(rule.id for rule in rules)
        marked = [
            (rule, mark)
            for rule in rules
            if (mark := marks.get(rule.id)) is not None
            and mark.fingerprint == self._fingerprint(rule)
            and now >= mark.evaluated_at
        ]
        try:
            touched = self.store.marks.touched(marked, now, current, FULL_ABOVE)
        except Exception:
            # Evaluated in full instead: slower, never wrong.
            log.exception("finding the users touched since the last tick failed")
            return {}
        return {rule_id: ids for rule_id, ids in touched.items() if len(ids) <= FULL_ABOVE}

    def _evaluate(
        self,
        rule: Rule,
        now: datetime,
        cap: FrequencyCap,
        report: TickReport,
        scope: Sequence[str] | None = None,
    ) -> None:
        """Write the rule's rows (for the users in `scope`, when given): in SQL where SQL can
        decide them (engine/sql/ledger.py), through `decide()` and the cap for the rest. Both
        give the rows the dry run plans."""
        if self.metrics is not None:
            self.metrics.rule_evaluations.labels(rule.id).inc()
        # Earlier rules' emails are in the ledger now, where the cap reads them afresh: it
        # never saw those written in SQL.
        cap.forget()
        settings = _settings(self.config, self.domain)
        statements = self._prepared(rule, settings, now, scope)
        params = statements.params(now, scope)
        if statements.rows is not None:
            flags = partial(flags_select, rule, now, settings) if rule.send.guide else None
            decided = self.store.ledger.record_decided(statements.rows, flags, params)
            report.count(rule.id, decided.statuses, decided.guide_flags, self.metrics)
        if statements.rest is None:
            return
        for planned in self._plan_rule(rule, now, cap, query=statements.rest, params=params):
            written = self.store.ledger.record(planned, now)
            statuses = Counter(p.status.value for p in written)
            guides = sum(1 for p in written if p.sets_guide)
            report.count(rule.id, statuses, guides, self.metrics)

    def _prepared(
        self, rule: Rule, settings: Settings, now: datetime, scope: Sequence[str] | None
    ) -> RuleStatements:
        """The rule's tick statements, built at the first tick that needs them and run with
        parameters at every later one (`engine.sql.prepared`)."""
        key = (rule.id, scope_kind(scope))
        kept = self._statements.get(key)
        if kept is None or kept[0] is not rule or kept[1] != settings:
            statements = prepare(rule, settings, now, scope, set_based=self.set_based)
            kept = self._statements[key] = (rule, settings, statements)
        return kept[2]


def _mode(scope: Sequence[str] | None) -> str:
    return "full" if scope is None else "incremental" if scope else "idle"


def frequency_cap(ledger: Ledger, limit: int | None, now: datetime) -> FrequencyCap:
    # New emails go out within a day of `now` (quiet hours shift them by less), so the
    # emails that can count against them lie within a day either side of that.
    def fetch(user_ids: Sequence[str]) -> dict[str, list[datetime]]:
        return ledger.email_times(user_ids, now - WINDOW, now + 2 * WINDOW)

    return FrequencyCap(limit, fetch)


def _settings(config: Config, domain: str) -> Settings:
    """What the ledger's INSERT ... SELECT needs of the config to decide as `decide()` does."""
    return Settings(
        guide_ttl=config.defaults.guide_ttl,
        domain=domain,
        quiet_hours=config.mail.quiet_hours,
        daily_cap=config.mail.daily_cap,
        default_timezone=config.defaults.timezone,
    )
