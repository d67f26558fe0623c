"""Prometheus metrics for the daemon and the API, served at `/metrics`.

One `Metrics` per process (per app in tests), on its own `CollectorRegistry` rather than the
global one: two apps in one test process must not share or double-register counters.
Labels are bounded sets (rule ids, statuses, channels, kinds), never user ids or emails:
each label value is a time series, and personal data does not belong in monitoring."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine.telemetry.queue import QueueCollector, QueueState

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]

# Every status a delivery can end a dispatch in, per channel: declared at zero so that
# `rate(...)` and `increase(...)` alerts see the series before the first failure.
EMAIL_OUTCOMES = ("sent", "failed", "retrying", "unknown", "pending")
GUIDE_OUTCOMES = ("sent",)

# Sends go to a local SMTP relay or a file: milliseconds normally, seconds when it struggles.
SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A tick evaluates every rule in SQL and sends a batch: up to minutes on a large base.
TICK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.ticks = Counter("lifecycle_ticks", "Ticks run", registry=r)
        self.tick_duration = Histogram(
            "lifecycle_tick_duration_seconds",
            "Time a tick took, evaluation and dispatch",
            buckets=TICK_BUCKETS,
            registry=r,
        )
        self.rule_evaluations = Counter(
            "lifecycle_rule_evaluations", "Rule evaluations, per rule", ["rule"], registry=r
        )
        self.rule_matches = Counter(
            "lifecycle_rule_matches",
            "Ledger rows a rule wrote (users it newly fired for), per rule",
            ["rule"],
            registry=r,
        )
        self.deliveries = Counter(
            "lifecycle_deliveries",
            "Delivery outcomes: emails by dispatch result, guides when their flag is set",
            ["status", "channel"],
            registry=r,
        )
        self.send_duration = Histogram(
            "lifecycle_send_duration_seconds",
            "Time one transport send took",
            buckets=SEND_BUCKETS,
            registry=r,
        )
        self.ingested = Counter(
            "lifecycle_ingested", "Records stored by ingestion", ["kind"], registry=r
        )
        self.last_tick = Gauge(
            "lifecycle_last_tick_success_timestamp_seconds",
            "Unix time of this process's last evaluation tick that finished without error",
            registry=r,
        )
        self.last_dispatch = Gauge(
            "lifecycle_last_dispatch_success_timestamp_seconds",
            "Unix time of this process's last dispatch that finished without error",
            registry=r,
        )
        for status in EMAIL_OUTCOMES:
            self.deliveries.labels(status, "email")
        for status in GUIDE_OUTCOMES:
            self.deliveries.labels(status, "guide")
        for kind in ("users", "events"):
            self.ingested.labels(kind)
        # The standard process_* / python_* series, on this registry rather than the global
        # one (collectors read /proc at scrape time, so sharing the instances is safe).
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)
        self._queue: QueueCollector | None = None

    def watch_queue(
        self, read: Callable[[], QueueState | None], now: Callable[[], datetime]
    ) -> None:
        """Export the queue gauges, `read` at every scrape; a second call replaces the source
        (an app rebuilt on the same metrics must not register the series twice)."""
        if self._queue is None:
            self._queue = QueueCollector(read, now)
            self.registry.register(self._queue)
        else:
            self._queue.read, self._queue.now = read, now

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
