"""The queue gauges on SQLite and PostgreSQL: depth per waiting status (every one declared
at zero), the oldest due email's age, the live lease holders; a database that cannot be
read gives `lifecycle_queue_up 0` instead of a failed scrape; the daemon's jobs stamp their
last success; the standard process collector is there."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from engine.app.wiring import App
from engine.clock import FixedClock
from engine.daemon.scheduler import dispatch_job, evaluate_job
from engine.sql.schema import deliveries
from engine.store import Store, connect
from engine.store.leases import Leases
from engine.telemetry.metrics import Metrics
from engine.telemetry.queue import QUEUE_STATUSES
from tests.integration.test_daemon_jobs import app as app  # the fixture

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(metrics: Metrics) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.exposition().decode())
        for sample in family.samples
    }


def row(user: str, status: str, send_at: datetime | None, now: datetime) -> dict[str, Any]:
    return {
        "rule_id": "r",
        "user_id": user,
        "subject": user,
        "status": status,
        "anchor_at": now,
        "fire_at": now,
        "send_at": send_at,
        "holdout": False,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def watched(store: Store, now: datetime) -> Metrics:
    metrics = Metrics()
    clock = FixedClock(now)
    metrics.watch_queue(lambda: store.gauges.queue_or_none(clock.now()), clock.now)
    return metrics


def test_an_empty_queue_declares_every_status_at_zero(store: Store, now: datetime) -> None:
    got = samples(watched(store, now))
    assert got[("lifecycle_queue_up", ())] == 1
    for status in QUEUE_STATUSES:
        assert got[("lifecycle_queue_depth", (("status", status),))] == 0
    assert got[("lifecycle_oldest_due_email_age_seconds", ())] == 0
    assert got[("lifecycle_rule_lease_holders", ())] == 0
    for status in ("sent", "failed", "retrying", "unknown"):
        assert got[("lifecycle_deliveries_total", (("channel", "email"), ("status", status)))] == 0
    assert got[("lifecycle_last_tick_success_timestamp_seconds", ())] == 0


def test_depth_age_and_lease_holders(store: Store, now: datetime) -> None:
    rows = [
        row("a", "pending", now - timedelta(seconds=90), now),
        row("b", "pending", now + timedelta(hours=1), now),  # queued, not yet due
        row("c", "retrying", now - timedelta(seconds=300), now),  # the oldest due
        row("d", "unknown", now - timedelta(days=2), now),  # stuck, not due
        row("e", "sent", now - timedelta(days=3), now),  # terminal: not counted
    ]
    with store.engine.begin() as connection:
        connection.execute(deliveries.insert(), rows)
    Leases(store.engine, "replica-1").acquire(["r1", "r2"], now, timedelta(minutes=3))
    Leases(store.engine, "gone").acquire(["r3"], now - timedelta(hours=1), timedelta(minutes=3))

    got = samples(watched(store, now))
    depth = {
        dict(labels)["status"]: value
        for (name, labels), value in got.items()
        if name == "lifecycle_queue_depth"
    }
    assert depth == {
        "pending": 2,
        "claimed": 0,
        "sending": 0,
        "retrying": 1,
        "unknown": 1,
        "failed": 0,
    }
    assert got[("lifecycle_oldest_due_email_age_seconds", ())] == 300
    assert got[("lifecycle_rule_lease_holders", ())] == 1  # the expired lease is no holder
    assert got[("lifecycle_rule_leases", (("holder", "replica-1"),))] == 2


def test_an_unreadable_database_is_reported_not_raised(tmp_path: Path, now: datetime) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'unmigrated.db'}")  # no tables at all
    try:
        got = samples(watched(Store(engine), now))
    finally:
        engine.dispose()
    assert got[("lifecycle_queue_up", ())] == 0
    assert not [name for name, _ in got if name == "lifecycle_queue_depth"]


def test_the_process_collector_is_exported() -> None:
    names = {name for name, _ in samples(Metrics())}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert "python_info" in names


def test_the_daemon_jobs_stamp_their_last_success(app: App, now: datetime) -> None:
    clock = FixedClock(now)
    stop = threading.Event()
    evaluate_job(app, clock, Leases(app.store.engine, "me"), stop)()
    dispatch_job(app, clock, stop)()
    got = samples(app.metrics)
    assert got[("lifecycle_last_tick_success_timestamp_seconds", ())] == now.timestamp()
    assert got[("lifecycle_last_dispatch_success_timestamp_seconds", ())] == now.timestamp()


def test_a_failed_tick_leaves_the_last_success_alone(app: App, now: datetime) -> None:
    with app.store.engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE rule_leases")  # the tick's first statement fails
    evaluate_job(app, FixedClock(now), Leases(app.store.engine, "me"), threading.Event())()
    assert samples(app.metrics)[("lifecycle_last_tick_success_timestamp_seconds", ())] == 0
