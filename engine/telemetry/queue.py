"""Gauges read from the database at scrape time: the email queue by status, the age of the
oldest due email, and who holds the rule leases.

A custom collector rather than gauges set after each tick: a scrape then shows the queue as
it is now, across every replica, even when this replica's jobs are stuck (which is exactly
when an operator looks). The statements are the store's (`engine.store.gauges`); this only
turns their result into metric families."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# The statuses an email waits in, or is stuck in: pre-declared at zero, so that an alert on
# `unknown > 0` has a series to compare from the start. The terminal ones (sent, held_out,
# skipped) grow without bound and are counted by `lifecycle_deliveries_total` instead.
QUEUE_STATUSES = ("pending", "claimed", "sending", "retrying", "unknown", "failed")
DUE_STATUSES = ("pending", "retrying")  # what a dispatch would claim now


@dataclass(frozen=True)
class QueueState:
    depth: Mapping[str, int]  # rows per status, for QUEUE_STATUSES
    oldest_due_at: datetime | None  # the earliest send_at of a due row, None: nothing due
    lease_holders: Mapping[str, int]  # live holder -> rules it holds


class QueueCollector(Collector):
    """`read` returns the state, or None when the database cannot be read (then only
    `lifecycle_queue_up 0` is exported: a scrape must never fail with the database)."""

    def __init__(self, read: Callable[[], QueueState | None], now: Callable[[], datetime]) -> None:
        self.read = read
        self.now = now

    def collect(self) -> Iterator[Metric]:
        state = self.read()
        up = GaugeMetricFamily(
            "lifecycle_queue_up", "1 when the queue gauges could be read from the database"
        )
        up.add_metric([], 0 if state is None else 1)
        yield up
        if state is None:
            return
        yield from _families(state, self.now())

    def describe(self) -> Iterator[Metric]:
        # No database query at registration: the families are described, not collected.
        return iter(())


def _families(state: QueueState, now: datetime) -> Iterator[Metric]:
    depth = GaugeMetricFamily(
        "lifecycle_queue_depth", "Email ledger rows per waiting or stuck status", labels=["status"]
    )
    for status in QUEUE_STATUSES:
        depth.add_metric([status], state.depth.get(status, 0))
    yield depth
    age = GaugeMetricFamily(
        "lifecycle_oldest_due_email_age_seconds",
        "How long the oldest due email (pending or retrying, send_at passed) has waited; 0 "
        "when none is due",
    )
    oldest = state.oldest_due_at
    age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    yield age
    holders = GaugeMetricFamily(
        "lifecycle_rule_lease_holders", "Replicas holding a live rule lease"
    )
    holders.add_metric([], len(state.lease_holders))
    yield holders
    leases = GaugeMetricFamily(
        "lifecycle_rule_leases", "Live rule leases per holder (replica)", labels=["holder"]
    )
    for holder, count in sorted(state.lease_holders.items()):
        leases.add_metric([holder], count)
    yield leases
