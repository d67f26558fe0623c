"""Webhook dispatch: claim due webhook rows, render and sign each body, POST it, record the
outcome with the emails' states and retries (engine.delivery.outcome).

Its own queue (`engine.store.webhooks`) and its own job in the daemon, so that a slow or
unreachable receiver never holds up an email; and each pass is bounded: requests by their
timeouts, the pass by `webhooks.pass_time` (after which it hands back what it claimed and
has not sent). One request at a time: webhooks are alerts, not bulk mail.

A row goes `sending` just before its request and gets its outcome just after, so a crash in
between leaves that one row `sending`, then `unknown` (the stale-claim recovery), never
re-sent unless `webhooks.retry.resend_unknown` is set."""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from engine.clock import Clock
from engine.config import RetryConfig
from engine.delivery.compose import Composer
from engine.delivery.dispatcher import clock_of, recover
from engine.delivery.outcome import Outcomes
from engine.delivery.signing import secret_key, signed_headers, webhook_id
from engine.delivery.webhook_body import render_body
from engine.delivery.webhook_http import WebhookSender, host_of
from engine.errors import TemplateError
from engine.model import Status, WebhookDue
from engine.rules.language import RuleSet
from engine.rules.webhooks import ENDPOINT_PREFIX
from engine.store.outbox import Finish
from engine.telemetry.metrics import Metrics

log = logging.getLogger("lifecycle.webhooks")


class WebhookOutboxStore(Protocol):
    """What the webhook dispatcher needs of the database (`engine.store.webhooks`)."""

    def claim_due(self, now: datetime, limit: int = 20) -> list[WebhookDue]: ...
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
    def release_claims(self, ids: list[int], now: datetime) -> int: ...
    def requeue_stale_claims(self, now: datetime, lease: timedelta) -> int: ...
    def expire_stale_claims(self, now: datetime, lease: timedelta, *, resend: bool) -> int: ...


class WebhookDispatcher:
    def __init__(
        self,
        *,
        outbox: WebhookOutboxStore,
        rules: RuleSet,
        composer: Composer,
        sender: WebhookSender,
        secret: str,
        retry: RetryConfig,
        pass_time: timedelta,
        random: Callable[[], float] = random.random,
        metrics: Metrics | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        batch_size: int = 20,
    ) -> None:
        self.outbox = outbox
        self.rules = rules
        self.composer = composer
        self.sender = sender
        # No key, no request: an unsigned webhook would be one any receiver must reject.
        self.key = secret_key(secret) if secret else None
        self.retry = retry
        self.pass_time = pass_time
        self.metrics = metrics
        self.monotonic = monotonic  # tests pass a fake: the pass's bound, not the requests'
        self.batch_size = batch_size
        self.outcomes = Outcomes(retry, random, lambda *a, **k: None)  # nothing bounces

    def dispatch(
        self, now: datetime | Clock, *, should_stop: Callable[[], bool] = lambda: False
    ) -> Counter[str]:
        """Send the due webhooks, within `pass_time`; the outcomes by status."""
        clock = clock_of(now)
        outcome = recover(self.outbox, self.retry, clock())
        if self.key is None:
            return outcome  # the CLI and `check` say why; the rows wait for a secret
        deadline = self.monotonic() + self.pass_time.total_seconds()
        while not should_stop() and self.monotonic() < deadline:
            batch = self.outbox.claim_due(clock(), self.batch_size)
            if not batch:
                break
            for index, item in enumerate(batch):
                if should_stop() or self.monotonic() >= deadline:
                    rest = [row.id for row in batch[index:]]
                    self.outbox.release_claims(rest, clock())
                    log.info("webhook pass ended: %d claimed webhooks handed back", len(rest))
                    return outcome
                finish = self._deliver(item, self.key, clock)
                if finish is not None:
                    self._record(finish)
                    outcome[finish.status.value] += 1
        return outcome

    def _deliver(
        self, item: WebhookDue, key: bytes, clock: Callable[[], datetime]
    ) -> Finish | None:
        """Render, sign and POST one claimed row; its outcome (None: the claim was lost)."""
        now = clock()
        try:
            rule = self.rules.get(item.rule_id)
        except KeyError:
            return self.outcomes.fail(item, now, f"rule {item.rule_id!r} is no longer defined")
        webhook = rule.send.webhook
        if webhook is None:
            return self.outcomes.fail(item, now, f"rule {rule.id!r} no longer sends a webhook")
        if webhook.url.startswith(ENDPOINT_PREFIX):  # a disabled rule's, never resolved
            reason = f"send.webhook.url: no endpoint {webhook.url!r} in webhooks.endpoints"
            return self.outcomes.fail(item, now, reason)
        context = self.composer.context(
            rule,
            item.user,
            item.anchor_at,
            item.anchor_properties,
            item.guide_id,
            item.guide_expires_at,
        )
        try:
            body = render_body(self.composer.renderer, item.body_template, context)
        except TemplateError as exc:
            return self.outcomes.fail(item, now, f"render error: {exc}")
        now = clock()
        if not self.outbox.start_sending(item.id, now):
            log.warning("webhook %s: the claim expired before sending; not sent", item.id)
            return None
        message_id = webhook_id(item.rule_id, item.subject, item.occurrence)
        headers = {**webhook.headers, **signed_headers(key, message_id, int(now.timestamp()), body)}
        log.debug("webhook %s (%s) to %s", item.id, rule.id, host_of(webhook.url))
        try:
            receipt = self.sender.post(webhook.url, headers, body)
        except Exception as exc:  # noqa: BLE001 - every request fault has an outcome
            return self.outcomes.failed_send(item, clock(), exc)
        return self.outcomes.sent(item, clock(), receipt)

    def _record(self, finish: Finish) -> None:
        self.outbox.mark(
            finish.delivery_id,
            finish.status,
            finish.at,
            reason=finish.reason,
            reply=finish.reply,
            send_at=finish.send_at,
        )
        if self.metrics is not None:
            self.metrics.deliveries.labels(finish.status.value, "webhook").inc()
