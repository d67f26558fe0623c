"""Every SQL function that SQLite and PostgreSQL spell differently, in one place: time
arithmetic (a stored time plus seconds, seconds since 1970, calendar months), the hashes behind
the holdout and the Message-ID, and the upsert. Each is a SQLAlchemy construct compiled per
dialect, so the statement builders stay dialect-free. Pure: nothing here runs a statement."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, Boolean, LargeBinary, String, Table, bindparam, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator, TypeEngine

from engine.decide.keys import HOLDOUT_KEY_BYTES, holdout_key, user_hash
from engine.sql.schema import deliveries

# SQLite has no SHA-256: the store registers these (deterministic) on each connection.
SQLITE_FUNCTIONS = {
    "lifecycle_holdout_key": (2, holdout_key),
    "lifecycle_user_hash": (1, user_hash),
}


class _Plus(ColumnElement[Any]):
    """A stored time plus whole seconds, as the time column stores it."""

    inherit_cache = True
    _traverse_internals = [
        ("moment", InternalTraversal.dp_clauseelement),
        ("seconds", InternalTraversal.dp_plain_obj),
    ]

    def __init__(self, moment: ColumnElement[Any], seconds: int) -> None:
        self.moment = moment
        self.seconds = seconds
        self.type: TypeEngine[Any] = deliveries.c.fire_at.type


def plus(moment: ColumnElement[Any], after: timedelta) -> ColumnElement[Any]:
    seconds = int(after.total_seconds())
    return moment if seconds == 0 else _Plus(moment, seconds)


@compiles(_Plus, "sqlite")
def _plus_sqlite(element: _Plus, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as fixed-width 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds leave the fraction.
    moment = compiler.process(element.moment, **kw)
    return (
        f"(strftime('%Y-%m-%d %H:%M:%S', {moment}, '+{element.seconds} seconds')"
        f" || substr({moment}, 20))"
    )


@compiles(_Plus, "postgresql")
def _plus_pg(element: _Plus, compiler: SQLCompiler, **kw: Any) -> str:
    moment = compiler.process(element.moment, **kw)
    return f"({moment} + interval '{element.seconds} seconds')"


class _NameList(TypeDecorator[Sequence[str]]):
    """A list of names bound as one parameter: a JSON array (SQLite), a text[] (PostgreSQL)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Sequence[str] | None, dialect: Any) -> Any:
        if value is None:
            return None
        if dialect.name != "sqlite":
            return list(value)
        return _json_list(value) if isinstance(value, tuple) else json.dumps(list(value))


@lru_cache(maxsize=8)
def _json_list(names: tuple[str, ...]) -> str:
    """Kept for a constant list (the 600 timezone names every rule with quiet hours binds at
    every tick): encoding it each time was a tenth of a replay's tick."""
    return json.dumps(list(names))


class NameIn(ColumnElement[bool]):
    """`column IN names` (or NOT IN) with the names as one bound list: a statement keeps one
    shape whatever the names, so it is compiled once and cached, and 600 timezone names are
    one parameter, not 600 to expand and coerce on every execution."""

    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("names", InternalTraversal.dp_clauseelement),
        ("negated", InternalTraversal.dp_plain_obj),
    ]

    def __init__(
        self,
        column: ColumnElement[Any],
        names: Sequence[str],
        *,
        negated: bool,
        key: str | None = None,
    ) -> None:
        self.column = column
        self.names = bindparam(key, tuple(names), type_=_NameList())
        self.negated = negated
        self.type: TypeEngine[Any] = Boolean()


@compiles(NameIn, "sqlite")
def _name_in_sqlite(element: NameIn, compiler: SQLCompiler, **kw: Any) -> str:
    column, names = compiler.process(element.column, **kw), compiler.process(element.names, **kw)
    operator = "NOT IN" if element.negated else "IN"
    return f"({column} {operator} (SELECT value FROM json_each({names})))"


@compiles(NameIn, "postgresql")
def _name_in_pg(element: NameIn, compiler: SQLCompiler, **kw: Any) -> str:
    column, names = compiler.process(element.column, **kw), compiler.process(element.names, **kw)
    test = f"({column} = ANY(CAST({names} AS TEXT[])))"
    return f"(NOT {test})" if element.negated else test


def zone_map(times: Mapping[str, datetime]) -> str:
    """Timezone name -> a time, as the JSON object `ZoneTime` binds: the times as SQLite
    stores them (fixed-width naive UTC text, `UTCDateTime`), which PostgreSQL casts too."""
    return json.dumps({name: _stored(at) for name, at in times.items()})


def _stored(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class ZoneTime(ColumnElement[Any]):
    """The time `times` (`zone_map`) gives the timezone name, or NULL where it gives none:
    one bound JSON object whatever the names, so the statement keeps one shape (and is
    compiled once) however the quiet hours group the zones at each `now`."""

    inherit_cache = True
    _traverse_internals = [
        ("timezone", InternalTraversal.dp_clauseelement),
        ("times", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, timezone: ColumnElement[Any], times: ColumnElement[str]) -> None:
        self.timezone = timezone
        self.times = times
        self.type: TypeEngine[Any] = deliveries.c.send_at.type


@compiles(ZoneTime, "sqlite")
def _zone_time_sqlite(element: ZoneTime, compiler: SQLCompiler, **kw: Any) -> str:
    # json_each with `key =`, not json_extract with a path: a name is never read as a path.
    timezone, times = (
        compiler.process(element.timezone, **kw),
        compiler.process(element.times, **kw),
    )
    return f"(SELECT value FROM json_each({times}) WHERE key = {timezone})"


@compiles(ZoneTime, "postgresql")
def _zone_time_pg(element: ZoneTime, compiler: SQLCompiler, **kw: Any) -> str:
    timezone, times = (
        compiler.process(element.timezone, **kw),
        compiler.process(element.times, **kw),
    )
    return f"CAST(CAST({times} AS JSONB) ->> {timezone} AS TIMESTAMP)"


class HoldoutKey(ColumnElement[bytes]):
    """`decide.holdout_key(rule_id, user_id)`: the first bytes of SHA-256(rule NUL user)."""

    inherit_cache = True
    type = LargeBinary()
    _traverse_internals = [
        ("rule_id", InternalTraversal.dp_string),
        ("user_id", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, rule_id: str, user_id: ColumnElement[Any]) -> None:
        self.rule_id = rule_id
        self.user_id = user_id


@compiles(HoldoutKey, "sqlite")
def _holdout_key_sqlite(element: HoldoutKey, compiler: SQLCompiler, **kw: Any) -> str:
    rule_id = compiler.process(literal(element.rule_id, String()), **kw)
    return f"lifecycle_holdout_key({rule_id}, {compiler.process(element.user_id, **kw)})"


@compiles(HoldoutKey, "postgresql")
def _holdout_key_pg(element: HoldoutKey, compiler: SQLCompiler, **kw: Any) -> str:
    prefix = compiler.process(literal(element.rule_id.encode() + b"\x00", LargeBinary()), **kw)
    user_id = compiler.process(element.user_id, **kw)
    return (
        f"substring(sha256({prefix} || convert_to({user_id}, 'UTF8')) "
        f"from 1 for {HOLDOUT_KEY_BYTES})"
    )


class UserHash(ColumnElement[str]):
    """`decide.user_hash(user_id)`: the hex digest prefix a Message-ID carries."""

    inherit_cache = True
    type = String()
    _traverse_internals = [("user_id", InternalTraversal.dp_clauseelement)]

    def __init__(self, user_id: ColumnElement[Any]) -> None:
        self.user_id = user_id


@compiles(UserHash, "sqlite")
def _user_hash_sqlite(element: UserHash, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lifecycle_user_hash({compiler.process(element.user_id, **kw)})"


@compiles(UserHash, "postgresql")
def _user_hash_pg(element: UserHash, compiler: SQLCompiler, **kw: Any) -> str:
    user_id = compiler.process(element.user_id, **kw)
    return f"substr(encode(sha256(convert_to({user_id}, 'UTF8')), 'hex'), 1, 20)"


class _TimeFunction(ColumnElement[int]):
    inherit_cache = True

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column

    @property
    def type(self) -> TypeEngine[Any]:  # type: ignore[override]
        return BigInteger()

    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]


class Epoch(_TimeFunction):
    """Whole seconds since 1970-01-01 UTC (fractions dropped, on both databases)."""

    inherit_cache = True


class MonthNumber(_TimeFunction):
    """`year * 12 + month - 1`: consecutive integers for consecutive calendar months."""

    inherit_cache = True


@compiles(Epoch, "sqlite")
def _epoch_sqlite(element: Epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(strftime('%s', {compiler.process(element.column, **kw)}) AS INTEGER)"


@compiles(Epoch, "postgresql")
def _epoch_pg(element: Epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # Timestamps are stored without a zone, in UTC: EXTRACT(EPOCH) reads them as UTC.
    column = compiler.process(element.column, **kw)
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {column})) AS BIGINT)"


@compiles(MonthNumber, "sqlite")
def _month_sqlite(element: MonthNumber, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return (
        f"(CAST(strftime('%Y', {column}) AS INTEGER) * 12 "
        f"+ CAST(strftime('%m', {column}) AS INTEGER) - 1)"
    )


@compiles(MonthNumber, "postgresql")
def _month_pg(element: MonthNumber, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return (
        f"(CAST(EXTRACT(YEAR FROM {column}) AS INTEGER) * 12 "
        f"+ CAST(EXTRACT(MONTH FROM {column}) AS INTEGER) - 1)"
    )


def upsert_statement(dialect: str, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which has ON CONFLICT (same spelling on both)."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
