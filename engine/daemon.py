"""`lifecycle run`: APScheduler 3.x runs the tick on an interval, next to the HTTP API.

All durable state is in the engine's own tables; the job store is in memory (APScheduler's
SQLAlchemy job store pickles jobs and cannot be shared by two schedulers)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from contextlib import nullcontext
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from engine.app import App
from engine.clock import Clock
from engine.lock import lock_database
from engine.reload import Reloader

log = logging.getLogger("lifecycle.daemon")


def tick_job(app: App, clock: Clock, lock: threading.Lock | None = None) -> Callable[[], None]:
    def tick() -> None:
        now = clock.now()  # read once per tick and passed down
        try:
            with lock or nullcontext():  # hot reload swaps rules only between ticks
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


def schedule(
    scheduler: BaseScheduler, app: App, clock: Clock, lock: threading.Lock | None = None
) -> None:
    scheduler.add_job(
        tick_job(app, clock, lock),
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
    # Before anything ticks; held until this returns (or the process ends, however it ends).
    _lock = lock_database(app.config.database_url)
    log.info(
        "lifecycle daemon: %d rules, tick every %s",
        len(app.rules.enabled),
        app.config.scheduler.tick,
    )
    reloader = Reloader(app.runner, app.config)
    reloader.start()
    _reload_on_sighup(reloader)
    try:
        _run(app, clock, serve, reloader.lock)
    finally:
        reloader.stop()


def _run(app: App, clock: Clock, serve: Callable[[], None] | None, lock: threading.Lock) -> None:
    if serve is None:
        blocking = BlockingScheduler(timezone="UTC")
        schedule(blocking, app, clock, lock)
        _stop_on_signals(blocking)
        blocking.start()
        return
    background = BackgroundScheduler(timezone="UTC")
    schedule(background, app, clock, lock)
    background.start()
    try:
        serve()
    finally:
        log.info("stopping: waiting for the current tick to finish")
        background.shutdown(wait=True)


def _reload_on_sighup(reloader: Reloader) -> None:
    def reload(_signum: int, _frame: FrameType | None) -> None:
        reloader.request("SIGHUP")

    signal.signal(signal.SIGHUP, reload)


def _stop_on_signals(scheduler: BlockingScheduler) -> None:
    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current tick", signal.Signals(signum).name)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
