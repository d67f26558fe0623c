"""Shared fixtures: a fixed `now`, and a clean Store on SQLite and on PostgreSQL.

PostgreSQL tests run against 127.0.0.1:5432 (or $LIFECYCLE_TEST_PG_URL). Outside CI they are
skipped with the reason when the server is missing; in CI (CI=true) a missing server fails."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from engine.sql.schema import metadata
from engine.store import Store, connect, migrate

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "LIFECYCLE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def now() -> datetime:
    return NOW


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required in CI but {reason}")
    pytest.skip(f"PostgreSQL not available ({reason}); it runs in CI")


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A throwaway database on the local server, migrated once, dropped at the end."""
    with throwaway_database() as url:
        yield url


@pytest.fixture(scope="session")
def pg_twin_database() -> Iterator[str]:
    """A second one, for tests that run two stores side by side (incremental vs full)."""
    with throwaway_database() as url:
        yield url


@contextmanager
def throwaway_database() -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"lifecycle_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "missing"
        admin.dispose()
        _pg_unavailable(f"{PG_ADMIN_URL} could not be used: {type(exc).__name__}: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = connect(url)
    migrate(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _truncate(engine: Engine) -> None:
    names = ", ".join(t.name for t in metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """The same store tests on both databases (the contract tests)."""
    with open_store(request.param, request, tmp_path) as store:
        yield store


@contextmanager
def open_store(
    kind: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    *,
    name: str = "lifecycle.db",
    database: str = "pg_database",
) -> Iterator[Store]:
    """A migrated, empty store on `kind` ("sqlite" or "postgresql"), for store fixtures: the
    SQLite file `name`, or the PostgreSQL database of the fixture `database`."""
    if kind == "sqlite":
        engine = connect(f"sqlite:///{tmp_path / name}")
        migrate(engine)
    else:
        engine = connect(request.getfixturevalue(database))
        _truncate(engine)
    try:
        yield Store(engine)
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    engine = connect(f"sqlite:///{tmp_path / 'lifecycle.db'}")
    migrate(engine)
    yield Store(engine)
    engine.dispose()
