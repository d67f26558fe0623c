"""The daemon's jobs without processes: the scheduling options that make catch-up a single
run, a stop request honoured between rules and between sends, and the idle wait's bound."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from engine.app.wiring import App, open_app
from engine.clock import FixedClock
from engine.config import Config
from engine.daemon.scheduler import Activity, dispatch_job, evaluate_job, schedule
from engine.delivery.testing import RecordingTransport
from engine.store import UserUpsert
from engine.store.leases import Leases
from tests.conftest import ROOT


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    config = Config.model_validate(
        {
            "base_dir": tmp_path,
            "database": {"url": f"sqlite:///{tmp_path / 'lifecycle.db'}"},
            "paths": {"rules": str(ROOT / "rules"), "templates": str(ROOT / "templates")},
            "scheduler": {"tick": "1m", "dispatch": "15s"},
            "mail": {"quiet_hours": None},
        }
    )
    app = open_app(config, transport=RecordingTransport())
    yield app
    app.store.engine.dispose()


def test_both_jobs_coalesce_never_overlap_and_evaluate_before_sending(
    app: App, now: datetime
) -> None:
    scheduler = BackgroundScheduler(timezone="UTC")
    leases = Leases(app.store.engine, "me")
    stop = threading.Event()
    schedule(scheduler, app, FixedClock(now), leases=leases, stop=stop, activity=Activity())
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"tick", "dispatch", "webhooks"}
    # The webhooks' own job: a slow receiver holds up its thread, not the emails'.
    assert jobs["webhooks"].trigger.interval == timedelta(seconds=15)
    for job in jobs.values():
        assert job.coalesce is True
        assert job.max_instances == 1
        assert job.misfire_grace_time is None
    assert jobs["tick"].trigger.interval == timedelta(minutes=1)
    assert jobs["dispatch"].trigger.interval == timedelta(seconds=15)
    assert jobs["tick"].next_run_time == now
    assert jobs["dispatch"].next_run_time == now + timedelta(seconds=15)


def test_the_evaluation_job_takes_the_leases_and_evaluates_only_its_rules(
    app: App, now: datetime
) -> None:
    app.store.people.upsert_users(
        [UserUpsert("u1", {}, email="u1@example.com", signed_up_at=now - timedelta(hours=25))],
        now,
    )
    other = Leases(app.store.engine, "other")
    taken = [rule.id for rule in app.rules.enabled][:4]
    other.acquire(taken, now, timedelta(minutes=3))
    mine = Leases(app.store.engine, "me")
    evaluate_job(app, FixedClock(now), mine, threading.Event())()
    holders = {rule: holder for rule, (holder, _) in mine.holders().items()}
    assert {rule for rule, holder in holders.items() if holder == "other"} == set(taken)
    assert len([h for h in holders.values() if h == "me"]) == len(app.rules.enabled) - 4
    written = {row["rule_id"] for row in app.store.reads.deliveries()}
    assert written
    assert not written & set(taken)


def test_a_stop_before_the_evaluation_evaluates_nothing(app: App, now: datetime) -> None:
    app.store.people.upsert_users(
        [UserUpsert("u1", {}, email="u1@example.com", signed_up_at=now - timedelta(hours=25))],
        now,
    )
    stop = threading.Event()
    stop.set()
    evaluate_job(app, FixedClock(now), Leases(app.store.engine, "me"), stop)()
    dispatch_job(app, FixedClock(now), stop)()
    assert app.store.reads.deliveries() == []


def test_the_idle_wait_is_bounded() -> None:
    activity = Activity()
    assert activity.wait_idle(0.01)
    release = threading.Event()

    def job() -> None:
        with activity.busy():
            release.wait(10)

    worker = threading.Thread(target=job)
    worker.start()
    try:
        assert not activity.wait_idle(0.2)  # still busy: the wait gives up
    finally:
        release.set()
        worker.join(10)
    assert activity.wait_idle(1)
