"""Connections: the one place that creates an engine, sets SQLite's
pragmas and isolates a replay in one rolled-back transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, Dialect, make_url

from engine.sql.dialect import SQLITE_FUNCTIONS

BATCH = 1000  # rows per fetch where a query's result can grow with N


def connect(url: str, *, echo: bool = False) -> Engine:
    """An Engine with the settings the engine relies on (SQLite: WAL, a busy timeout)."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    options: dict[str, Any] = {}
    if url.startswith("postgresql") and "connect_timeout" not in url:
        # A host that drops packets must not hang a tick or /readyz for minutes.
        options["connect_args"] = {"connect_timeout": 10}
    # pre_ping: a pooled connection the server closed (a restart) is replaced, not used.
    engine = create_engine(url, echo=echo, pool_pre_ping=True, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgres_settings)
    return engine


def creates_file(url: str) -> bool:
    """Whether connecting to `url` would create a SQLite database file that is not there yet
    (SQLite creates the file on connect): a command that only reads checks this first."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return False
    return not database.startswith("file:") and not Path(database).exists()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    for name, (arguments, function) in SQLITE_FUNCTIONS.items():
        dbapi_connection.create_function(name, arguments, function, deterministic=True)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _postgres_settings(dbapi_connection: Any, _record: Any) -> None:
    # The planner's cost for a rule's statement (correlated subqueries per user) is far above
    # jit_above_cost, though it runs in milliseconds: JIT then spends ~1.4 s compiling it (the
    # trial-account rule at 100k users: 1.66 s, of which 1.39 s JIT). Per session, as a plain
    # SET, so that it also works behind poolers that refuse startup options.
    dbapi_connection.execute("SET jit = off")
    dbapi_connection.commit()


class Database(Protocol):
    """What a store part needs of its database: an Engine has it, and so does `_OneConnection`.
    The store's parts must use only these, and set execution options per statement (never on
    the connection, which a replay shares), or replays could not run them in isolation."""

    @property
    def dialect(self) -> Dialect: ...

    @property
    def url(self) -> URL: ...

    def begin(self) -> AbstractContextManager[Connection]: ...

    def connect(self) -> AbstractContextManager[Connection]: ...


_ENGINE_IS_A_DATABASE: type[Database] = Engine  # mypy checks the protocol against Engine


class OneConnection:
    """One connection posing as an Engine: each `begin()`, and each `connect()`, is a
    savepoint inside the connection's outer transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self.url = connection.engine.url

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        with self.connection.begin_nested():
            yield self.connection

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        # Reads get a savepoint on PostgreSQL: a failed statement there aborts the
        # transaction it runs in, and the engine's own failed read only ever loses its own
        # connection. A failed read on SQLite leaves the transaction as it was, and the
        # savepoint's two statements were a tenth of a replay's tick.
        if self.dialect.name == "sqlite":
            yield self.connection
            return
        with self.connection.begin_nested():
            yield self.connection


@contextmanager
def writing(db: Database) -> Iterator[Connection]:
    """A write transaction. On SQLite it begins at once and takes the write lock (BEGIN
    IMMEDIATE, which waits out the busy timeout): pysqlite itself begins only before a
    statement that starts with INSERT, UPDATE, DELETE or REPLACE, so a leading SELECT, or an
    INSERT ... SELECT that starts with WITH (the ledger's), ran and committed outside the
    transaction, and a crash could leave ledger rows without their guide flags. Taking the
    lock first also spares a read-then-write transaction SQLite's failed upgrade."""
    with db.begin() as connection:
        if connection.dialect.name == "sqlite" and not _in_transaction(connection):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection


def _in_transaction(connection: Connection) -> bool:
    # An isolated replay's savepoints run inside its own explicit transaction.
    return bool(connection.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]


@contextmanager
def isolated(engine: Database) -> Iterator[OneConnection]:
    """One connection whose every statement runs in one transaction, rolled back on exit; the
    parts' own `begin()` calls become savepoints. Reads see the real data and its own writes."""
    with engine.connect() as connection:
        outer = connection.begin()
        if connection.dialect.name == "sqlite":
            # pysqlite opens a transaction only before DML, so the first SAVEPOINT would
            # open the real transaction and its RELEASE would commit it: begin explicitly.
            connection.exec_driver_sql("BEGIN")
        try:
            yield OneConnection(connection)
        finally:
            outer.rollback()
