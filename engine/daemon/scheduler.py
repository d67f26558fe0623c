"""`lifecycle run`: APScheduler 3.x runs two jobs, evaluation every `scheduler.tick` and
dispatch every `scheduler.dispatch`, next to the HTTP API (uvicorn, in a thread).

All durable state is in the engine's own tables; the job store is in memory (APScheduler's
SQLAlchemy job store pickles jobs and cannot be shared by two schedulers). The main thread
owns the signals: the first SIGTERM/SIGINT stops new work, lets the sends in flight finish
within `scheduler.shutdown_grace` and exits 0; a second one exits at once."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from types import FrameType

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError

from engine.app.wiring import App
from engine.clock import Clock
from engine.daemon.lock import lock_database
from engine.daemon.reload import Reloader
from engine.http.server import running_server
from engine.store.leases import Leases

log = logging.getLogger("lifecycle.daemon")

EXIT_GRACE_EXPIRED = 1  # sends were still in flight when the grace period ran out


class Activity:
    """Counts the jobs running, so that a stop can wait for them with a deadline (the
    scheduler's own shutdown(wait=True) would wait for ever)."""

    def __init__(self) -> None:
        self._running = 0
        self._changed = threading.Condition()

    @contextmanager
    def busy(self) -> Iterator[None]:
        with self._changed:
            self._running += 1
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self._running == 0, timeout)


class Stop:
    """The first signal asks for a clean stop; the second one ends the process at once."""

    def __init__(self) -> None:
        self.requested = threading.Event()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested.is_set():
            log.warning("second %s: exiting at once", name)
            logging.shutdown()
            os._exit(128 + signum)
        log.info("%s: stopping; a second signal exits at once", name)
        self.requested.set()


def replica_id() -> str:
    """Unique per process, readable by people looking at the leases table."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def evaluate_job(
    app: App,
    clock: Clock,
    leases: Leases,
    stop: threading.Event,
    lock: threading.Lock | None = None,
) -> Callable[[], None]:
    period = app.config.scheduler.lease_period

    def evaluate() -> None:
        now = clock.now()  # read once per tick and passed down
        try:
            with lock or nullcontext():  # hot reload swaps rules only between ticks
                enabled = [rule.id for rule in app.runner.rules.enabled]
                held = leases.acquire(enabled, now, period)
                report = app.runner.tick(
                    now, dispatch=False, rule_ids=held, should_stop=stop.is_set
                )
                app.runner.prune()
        except Exception as exc:  # noqa: BLE001 - logged; a failed run must not stop the daemon
            _failed("tick", now, exc)
            return
        # When it finished, not when it began: an alert on its age then also catches a tick
        # that hangs.
        app.metrics.last_tick.set(clock.now().timestamp())
        others = len(enabled) - len(held)
        log.info(
            "tick at %s: evaluated %d rules%s (%s), wrote %s",
            now.isoformat(),
            len(held),
            f" ({others} held by other replicas)" if others else "",
            ", ".join(f"{n} {mode}" for mode, n in sorted(report.evaluations.items())),
            dict(report.written),
        )

    return evaluate


def dispatch_job(app: App, clock: Clock, stop: threading.Event) -> Callable[[], None]:
    def dispatch() -> None:
        now = clock.now()  # when the run started, for the log lines
        try:
            # The clock itself, read at each claim and each send: a drain longer than
            # mail.retry.sending_lease must not stamp its later claims with the time it began,
            # or another replica's recovery takes them back as abandoned.
            outcome = app.runner.dispatch(clock, should_stop=stop.is_set)
        except Exception as exc:  # noqa: BLE001 - logged; a failed run must not stop the daemon
            _failed("dispatch", now, exc)
            return
        app.metrics.last_dispatch.set(clock.now().timestamp())
        if outcome:
            log.info("dispatch at %s: %s", now.isoformat(), dict(outcome))

    return dispatch


def webhooks_job(app: App, clock: Clock, stop: threading.Event) -> Callable[[], None]:
    """The webhooks' own job (an APScheduler thread of its own): a receiver that is slow or
    down delays only the webhooks, never an email; each run is bounded by webhooks.pass_time."""

    def send_webhooks() -> None:
        now = clock.now()
        try:
            outcome = app.runner.dispatch_webhooks(clock, should_stop=stop.is_set)
        except Exception as exc:  # noqa: BLE001 - logged; a failed run must not stop the daemon
            _failed("webhooks", now, exc)
            return
        if outcome:
            log.info("webhooks at %s: %s", now.isoformat(), dict(outcome))

    return send_webhooks


def _failed(job: str, now: datetime, exc: Exception) -> None:
    """An unreachable database is an expected fault: one line a run, not a traceback each
    second; anything else is a bug worth its traceback."""
    if isinstance(exc, OperationalError):
        reason = (str(exc.orig or exc).strip().splitlines() or [""])[0]
        log.error(
            "%s at %s failed: the database is unavailable (%s); the next one will try again",
            job,
            now.isoformat(),
            reason,
        )
        return
    log.error("%s at %s failed; the next one will try again", job, now.isoformat(), exc_info=exc)


def schedule(
    scheduler: BaseScheduler,
    app: App,
    clock: Clock,
    *,
    leases: Leases,
    stop: threading.Event,
    activity: Activity,
    lock: threading.Lock | None = None,
) -> None:
    """The jobs (evaluation, email dispatch, webhook dispatch) coalesce missed runs into one
    and never overlap themselves: after a pause (a suspended process, a slow tick) the next
    run catches up once, not in a burst.

    Evaluation starts at once; the first dispatch comes one dispatch interval later, so that
    a start always evaluates before it sends (what is due goes out in that first dispatch)."""
    options = {"coalesce": True, "max_instances": 1, "misfire_grace_time": None}
    scheduler_config = app.config.scheduler
    now = clock.now()
    jobs = {
        "tick": (evaluate_job(app, clock, leases, stop, lock), scheduler_config.tick, now),
        "dispatch": (
            dispatch_job(app, clock, stop),
            scheduler_config.dispatch,
            now + scheduler_config.dispatch,
        ),
        "webhooks": (
            webhooks_job(app, clock, stop),
            scheduler_config.dispatch,
            now + scheduler_config.dispatch,
        ),
    }
    for job_id, (job, every, first) in jobs.items():
        scheduler.add_job(
            _tracked(job, activity),
            "interval",
            seconds=every.total_seconds(),
            id=job_id,
            next_run_time=first,
            **options,
        )


def _tracked(job: Callable[[], None], activity: Activity) -> Callable[[], None]:
    def run() -> None:
        with activity.busy():
            job()

    return run


def run(app: App, clock: Clock, *, stop: Stop | None = None, http: FastAPI | None = None) -> int:
    """Run until stopped; the exit code. With `http`, serve it on api.host:api.port."""
    # Before anything ticks; held until this returns (or the process ends, however it ends).
    _lock = lock_database(app.config.database_url)
    stop = stop or Stop()
    stop.install()
    leases = app.store.leases(replica_id())
    log.info(
        "lifecycle daemon: %d rules, evaluate every %s, dispatch every %s (replica %s)",
        len(app.rules.enabled),
        app.config.scheduler.tick,
        app.config.scheduler.dispatch,
        leases.holder,
    )
    reloader = Reloader(app.runner, app.config)
    reloader.start()
    _reload_on_sighup(reloader)
    try:
        with _api(app, http):
            return _run(app, clock, leases, stop, reloader.lock)
    finally:
        reloader.stop()


def _api(app: App, http: FastAPI | None) -> AbstractContextManager[object]:
    if http is None:
        return nullcontext()
    api = app.config.api
    return running_server(http, api.host, api.port, log_level="info")


def _run(app: App, clock: Clock, leases: Leases, stop: Stop, lock: threading.Lock) -> int:
    activity = Activity()
    scheduler = BackgroundScheduler(timezone="UTC")
    schedule(
        scheduler, app, clock, leases=leases, stop=stop.requested, activity=activity, lock=lock
    )
    scheduler.start()
    while not stop.requested.wait(0.5):  # a timeout keeps the main thread responsive
        pass
    scheduler.shutdown(wait=False)  # no new runs; the running ones see the stop
    return _drain(app, leases, activity)


def _drain(app: App, leases: Leases, activity: Activity) -> int:
    grace = app.config.scheduler.shutdown_grace.total_seconds()
    started = time.monotonic()
    finished = activity.wait_idle(grace)
    try:
        leases.release()  # another replica takes our rules at its next tick
    except Exception as exc:  # noqa: BLE001 - the leases expire by themselves anyway
        log.warning("could not release the rule leases (%s); they expire by themselves", exc)
    if not finished:
        log.error(
            "stopping: sends still in flight after the %gs grace period; deliveries left "
            "`sending` become `unknown` after mail.retry.sending_lease",
            grace,
        )
        return EXIT_GRACE_EXPIRED
    log.info("stopped cleanly in %.1fs", time.monotonic() - started)
    return 0


def _reload_on_sighup(reloader: Reloader) -> None:
    def reload(_signum: int, _frame: FrameType | None) -> None:
        reloader.request("SIGHUP")

    signal.signal(signal.SIGHUP, reload)
