"""`lifecycle run`: APScheduler 3.x runs the tick on an interval. All durable state is in the
engine's own tables; the job store is in memory (APScheduler's SQLAlchemy job store pickles
jobs and cannot be shared by two schedulers)."""

from __future__ import annotations

import logging
import signal
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from engine.app import App
from engine.clock import Clock

log = logging.getLogger("lifecycle.daemon")


def run(app: App, clock: Clock) -> None:
    scheduler = BlockingScheduler(timezone="UTC")
    interval = app.config.scheduler.tick.total_seconds()

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

    scheduler.add_job(
        tick,
        "interval",
        seconds=interval,
        id="tick",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
        next_run_time=clock.now(),
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping after the current tick", signal.Signals(signum).name)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("lifecycle daemon: %d rules, tick every %ss", len(app.rules.enabled), interval)
    scheduler.start()
