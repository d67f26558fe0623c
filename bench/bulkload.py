"""Bulk loading of a fresh benchmark database, chunk by chunk: PostgreSQL through COPY (psycopg),
SQLite through sqlite3's executemany of plain tuples. The stored rows are those the Store's
ingestion writes for new users and events (a test compares them), without its per-batch upsert
merge, which a fresh database does not need and which would dominate a ten-million-row load."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from psycopg.types.json import Jsonb
from sqlalchemy import Connection, Engine

from engine.model import USER_FIELDS
from engine.sql.schema import events, users
from engine.store import EventRecord, UserUpsert
from engine.whatif.population import Population

USER_COLUMNS = (*USER_FIELDS, "created_at", "updated_at")
SECONDARY_INDEXES = (*sorted(users.indexes, key=str), *sorted(events.indexes, key=str))
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's storage format for DateTime on SQLite
SQLITE_CACHE_KIB = 256 * 1024
EVENT_COLUMNS = ("user_id", "name", "occurred_at", "properties", "message_id", "received_at")


def drop_indexes(engine: Engine) -> None:
    """Drop the secondary indexes of users and events before a bulk load: building them once
    afterwards is cheaper than keeping them up to date row by row (the unique keys stay)."""
    with engine.begin() as connection:
        for index in SECONDARY_INDEXES:
            index.drop(connection)


def create_indexes(engine: Engine) -> None:
    """Build the indexes `drop_indexes` dropped: the schema is the engine's again."""
    with engine.begin() as connection:
        for index in SECONDARY_INDEXES:
            index.create(connection)


def load_part(engine: Engine, part: Population, now: datetime) -> None:
    """Write one chunk of users and their events in one transaction."""
    write = _copy if engine.dialect.name == "postgresql" else _executemany
    with engine.begin() as connection:
        write(connection, part, now)


def user_row(user: UserUpsert, now: datetime) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "persona": user.persona,
        "signup_source": user.signup_source,
        "signed_up_at": user.signed_up_at,
        "timezone": user.timezone,
        "account_id": user.account_id,
        "invited_by": user.invited_by,
        "traits": user.traits,
        "created_at": now,
        "updated_at": now,
    }


def event_row(event: EventRecord, now: datetime) -> dict[str, Any]:
    return {
        "user_id": event.user_id,
        "name": event.name,
        "occurred_at": event.occurred_at,
        "properties": event.properties,
        "message_id": event.message_id,
        "received_at": now,
    }


def _executemany(connection: Connection, part: Population, now: datetime) -> None:
    """Values formatted as SQLAlchemy binds them on SQLite (fixed-width naive-UTC text, JSON
    through json.dumps): its per-value bind processing halved the load rate."""
    # The default 2 MiB page cache thrashes on the events indexes past a few million rows.
    connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(
        _sqlite_insert("users", USER_COLUMNS),
        _sqlite_rows((user_row(u, now) for u in part.users), USER_COLUMNS),
    )
    cursor.executemany(
        _sqlite_insert("events", EVENT_COLUMNS),
        _sqlite_rows((event_row(e, now) for e in part.events), EVENT_COLUMNS),
    )


def _sqlite_insert(table: str, columns: tuple[str, ...]) -> str:
    marks = ", ".join("?" for _ in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"


def _sqlite_rows(
    rows: Iterable[dict[str, Any]], columns: tuple[str, ...]
) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        yield tuple(_sqlite_value(row[column]) for column in columns)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(SQLITE_DATETIME)
    if isinstance(value, dict):
        return json.dumps(value)
    return value


def _copy(connection: Connection, part: Population, now: datetime) -> None:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    _copy_rows(cursor, "users", USER_COLUMNS, (user_row(u, now) for u in part.users))
    _copy_rows(cursor, "events", EVENT_COLUMNS, (event_row(e, now) for e in part.events))


def _copy_rows(
    cursor: Any, table: str, columns: tuple[str, ...], rows: Iterable[dict[str, Any]]
) -> None:
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(tuple(_pg_value(row[column]) for column in columns))


def _pg_value(value: Any) -> Any:
    """The columns are naive UTC timestamps and JSONB, as UTCDateTime and JsonDoc bind them."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return Jsonb(value)
    return value
