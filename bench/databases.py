"""Throwaway databases for one run, and the few raw statements the harness needs on them
(ANALYZE, emptying the ledger, reading back what was written)."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, func, make_url, select, text

from engine.sql.schema import changes, deliveries, evaluation_marks, events, guide_flags

PG_URL_ENV = "LIFECYCLE_BENCH_PG_URL"
PG_DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DIALECTS = ("sqlite", "postgresql")
# (rule_id, subject, occurrence, user_id): the ledger's unique key, and the recipient chosen.
LedgerKeys = set[tuple[str, str, str, str]]


def pg_admin_url() -> str:
    return os.environ.get(PG_URL_ENV, PG_DEFAULT_ADMIN_URL)


def open_database(kind: str) -> AbstractContextManager[str]:
    """A fresh, empty database of this kind for the run; yields its URL."""
    if kind == "sqlite":
        return sqlite_database()
    return postgres_database(pg_admin_url())


@contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="lifecycle-bench-") as directory:
        yield f"sqlite:///{Path(directory) / 'bench.db'}"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """CREATE `lifecycle_bench_<random>` through the admin URL, and DROP it WITH (FORCE)."""
    name = f"lifecycle_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def analyze(engine: Engine) -> None:
    """Planner statistics, after loading (both dialects spell it ANALYZE)."""
    with _autocommit(engine) as connection:
        connection.exec_driver_sql("ANALYZE")


def newest_event_id(engine: Engine) -> int:
    """Where an incremental tick's watermark stands once the population is loaded."""
    with engine.connect() as connection:
        return int(connection.execute(select(func.coalesce(func.max(events.c.id), 0))).scalar_one())


def reset_ledger(engine: Engine) -> None:
    """Delete every ledger row (guide flags first: they reference deliveries), and incremental
    evaluation's marks and change log. PostgreSQL also VACUUMs them, so that each repeat
    starts without dead rows to skip (a bulk load leaves a change-log row per user)."""
    with engine.begin() as connection:
        connection.execute(guide_flags.delete())
        connection.execute(deliveries.delete())
        # The next tick is a first pass: no marks, and no change log (the deletes above just
        # logged one row per ledger row) to read.
        connection.execute(evaluation_marks.delete())
        connection.execute(changes.delete())
    if engine.dialect.name == "postgresql":
        with _autocommit(engine) as connection:
            connection.exec_driver_sql("VACUUM guide_flags, deliveries, changes, evaluation_marks")


@contextmanager
def _autocommit(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        yield connection.execution_options(isolation_level="AUTOCOMMIT")


def ledger_keys(engine: Engine) -> LedgerKeys:
    d = deliveries.c
    statement = select(d.rule_id, d.subject, d.occurrence, d.user_id)
    with engine.connect() as connection:
        return {
            (row.rule_id, row.subject, row.occurrence, row.user_id)
            for row in connection.execute(statement)
        }


def count_rows(engine: Engine, table_name: str) -> int:
    table = {"deliveries": deliveries, "guide_flags": guide_flags}[table_name]
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def server_version(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return f"SQLite {sqlite3.sqlite_version}"
    with engine.connect() as connection:
        return str(connection.exec_driver_sql("SELECT version()").scalar_one())
