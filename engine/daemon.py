"""`lifecycle run`: APScheduler 3.x runs the tick on an interval, next to the HTTP API.

All durable state is in the engine's own tables; the job store is in memory (APScheduler's
SQLAlchemy job store pickles jobs and cannot be shared by two schedulers)."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from engine.app import App
from engine.clock import Clock

log = logging.getLogger("lifecycle.daemon")


def tick_job(app: App, clock: Clock) -> Callable[[], None]:
    def tick() -> None:
        now = clock.now()  # read once per tick and passed down
        try:
            report = app.runner.tick(now)
        except Exception:
            log.exception("tick at %s failed; the next tick will try again", now.isoformat())
            return
        log.info(
            "tick at %s: wrote %s, dispatched %s",
            now.isoformat(),
            dict(report.written),
            dict(report.dispatched),
        )

    return tick


def schedule(scheduler: BaseScheduler, app: App, clock: Clock) -> None:
    scheduler.add_job(
        tick_job(app, clock),
        "interval",
        seconds=app.config.scheduler.tick.total_seconds(),
        id="tick",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
        next_run_time=clock.now(),
    )


def run(app: App, clock: Clock, *, serve: Callable[[], None] | None = None) -> None:
    """Tick until stopped. With `serve` (the API server, which handles SIGINT/SIGTERM itself),
    the scheduler runs in the background and stops, after its current tick, when the server
    returns; without it, the scheduler blocks and handles the signals."""
    log.info(
        "lifecycle daemon: %d rules, tick every %s",
        len(app.rules.enabled),
        app.config.scheduler.tick,
    )
    if serve is None:
        blocking = BlockingScheduler(timezone="UTC")
        schedule(blocking, app, clock)
        _stop_on_signals(blocking)
        blocking.start()
        return
    background = BackgroundScheduler(timezone="UTC")
    schedule(background, app, clock)
    background.start()
    try:
        serve()
    finally:
        log.info("stopping: waiting for the current tick to finish")
        background.shutdown(wait=True)


def _stop_on_signals(scheduler: BlockingScheduler) -> None:
    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current tick", signal.Signals(signum).name)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
