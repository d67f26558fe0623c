"""The second pass after a large first pass, with the ledger's statistics left stale and with
them refreshed, on a database whose ledger has never been analyzed (a fresh install).

Autovacuum is switched off on the ledger's two tables for the duration, so that it cannot
refresh the statistics in the middle of the stale measurement (it would, within a minute or
so, on its own schedule); it is switched back on afterwards. SQLite has no such daemon, and
the engine does not ANALYZE there: the bench runs ANALYZE itself, to show whether it would
have helped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine

from bench.databases import reset_ledger
from bench.dataset import NOW
from bench.scale_measure import STEADY_AT
from bench.timing import median, timed
from engine.app.wiring import App
from engine.runner import Runner
from engine.store import Store
from engine.store.testing import intercept

LEDGER_TABLES = ("deliveries", "guide_flags")


@dataclass(frozen=True)
class StatsFigures:
    first_rows: int
    stale_second: float  # seconds, median
    fresh_second: float
    analyze_seconds: float  # one ANALYZE of the ledger after the first pass
    engine_analyzes: bool  # False on SQLite: the bench ran ANALYZE itself

    @property
    def stale_over_fresh(self) -> float:
        return self.stale_second / self.fresh_second if self.fresh_second > 0 else 0.0


def _stale(store: Store) -> Store:
    """The engine's store with the refresh switched off (through the store's seam)."""
    return store.replacing(ledger=intercept(store.ledger, analyze_ledger=lambda _real: False))


def second_pass(app: App, repeats: int) -> StatsFigures | None:
    """Call before any tick: the ledger's statistics are then those of an empty table (the
    first pass runs from an empty ledger each time, and only the refreshed runs ANALYZE).
    Stale and refreshed alternate, so that neither gets the colder caches. None when the
    first pass writes too few rows for the engine to refresh anything (small N)."""
    engine = app.store.engine
    stale_runner = app.runner.using(store=_stale(app.store))
    stale, fresh = [], []
    with _autovacuum_off(engine):
        for _ in range(repeats):
            first_rows, seconds = _first_then_second(stale_runner, refresh=False)
            stale.append(seconds)
            reset_ledger(engine)
            if first_rows < app.store.ledger.ANALYZE_AFTER_ROWS:
                return None
            _forget_statistics(engine)
            _, seconds = _first_then_second(app.runner, refresh=True)
            fresh.append(seconds)
            analyze_seconds, _ = timed(lambda: _analyze(app.store))
            reset_ledger(engine)
            _forget_statistics(engine)
    return StatsFigures(
        first_rows, median(stale), median(fresh), analyze_seconds, engine.dialect.name != "sqlite"
    )


def _first_then_second(runner: Runner, *, refresh: bool) -> tuple[int, float]:
    """The first pass (on PostgreSQL the engine's ANALYZE runs inside it, unless the store is
    stale), then the timed second pass."""
    report = runner.tick(NOW, dispatch=False)
    if refresh and runner.store.dialect == "sqlite":
        _analyze(runner.store)
    seconds, _ = timed(lambda: runner.tick(STEADY_AT, dispatch=False))
    return sum(report.written.values()), seconds


def _analyze(store: Store) -> None:
    if store.ledger.analyze_ledger():
        return
    with store.engine.begin() as connection:
        for table in LEDGER_TABLES:
            connection.exec_driver_sql(f"ANALYZE {table}")


@contextmanager
def _autovacuum_off(engine: Engine) -> Iterator[None]:
    if engine.dialect.name != "postgresql":
        yield
        return
    _set_autovacuum(engine, "SET (autovacuum_enabled = false)")
    try:
        yield
    finally:
        _set_autovacuum(engine, "RESET (autovacuum_enabled)")


def _set_autovacuum(engine: Engine, clause: str) -> None:
    with engine.begin() as connection:
        for table in LEDGER_TABLES:
            connection.exec_driver_sql(f"ALTER TABLE {table} {clause}")


def _forget_statistics(engine: Engine) -> None:
    """Back to statistics of an empty ledger, as before the first ever tick. PostgreSQL:
    VACUUM (in reset_ledger) already counted the table empty, and an ANALYZE of an empty table
    keeps the column statistics of the last one, so delete them. SQLite: drop its rows."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(
                "DELETE FROM pg_statistic WHERE starelid IN "
                "('deliveries'::regclass, 'guide_flags'::regclass)"
            )
        else:
            connection.exec_driver_sql(
                "DELETE FROM sqlite_stat1 WHERE tbl IN ('deliveries', 'guide_flags')"
            )
