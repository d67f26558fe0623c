"""Typed reads of one top-level key of a JSON column, the same on SQLite and PostgreSQL.

A read yields the value only when its JSON type is the one asked for, and NULL otherwise, so
that `plan: {eq: 5}` never matches the string "5" and a string never breaks a numeric cast.
The reference evaluator implements the same type-strict semantics in Python."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Float, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine


class _JsonRead(ColumnElement[Any]):
    inherit_cache = True
    kind = ""

    def __init__(self, column: ColumnElement[Any], key: str) -> None:
        self.column = column
        self.json_key = key

    @property
    def type(self) -> TypeEngine[Any]:  # type: ignore[override]
        types: dict[str, TypeEngine[Any]] = {"text": String(), "number": Float()}
        return types.get(self.kind, Boolean())

    # Cache key: the column and key are part of the statement's structure.
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("json_key", InternalTraversal.dp_string),
    ]


class JsonText(_JsonRead):
    inherit_cache = True
    kind = "text"


class JsonNumber(_JsonRead):
    inherit_cache = True
    kind = "number"


class JsonBool(_JsonRead):
    inherit_cache = True
    kind = "bool"


class JsonKey(_JsonRead):
    """A value that names an occurrence: a string, or an integer as its decimal text
    (`reference.occurrence_value`); NULL otherwise."""

    inherit_cache = True
    kind = "text"


class JsonPresent(_JsonRead):
    """True when the key holds a non-null value."""

    inherit_cache = True
    kind = "present"


def _literal(key: str) -> str:
    return "'" + key.replace("'", "''") + "'"


def _sqlite_path(key: str) -> str:
    return _literal('$."' + key + '"')


@compiles(JsonText, "sqlite")
def _text_sqlite(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = compiler.process(element.column, **kw), _sqlite_path(element.json_key)
    return f"(CASE WHEN json_type({col}, {path}) = 'text' THEN json_extract({col}, {path}) END)"


@compiles(JsonNumber, "sqlite")
def _number_sqlite(element: JsonNumber, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = compiler.process(element.column, **kw), _sqlite_path(element.json_key)
    return (
        f"(CASE WHEN json_type({col}, {path}) IN ('integer', 'real') "
        f"THEN json_extract({col}, {path}) END)"
    )


@compiles(JsonBool, "sqlite")
def _bool_sqlite(element: JsonBool, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = compiler.process(element.column, **kw), _sqlite_path(element.json_key)
    return f"(CASE json_type({col}, {path}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END)"


@compiles(JsonPresent, "sqlite")
def _present_sqlite(element: JsonPresent, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = compiler.process(element.column, **kw), _sqlite_path(element.json_key)
    return f"(coalesce(json_type({col}, {path}), 'null') <> 'null')"


@compiles(JsonText, "postgresql")
def _text_pg(element: JsonText, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = compiler.process(element.column, **kw), _literal(element.json_key)
    return f"(CASE WHEN jsonb_typeof({col} -> {key}) = 'string' THEN {col} ->> {key} END)"


@compiles(JsonNumber, "postgresql")
def _number_pg(element: JsonNumber, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = compiler.process(element.column, **kw), _literal(element.json_key)
    return (
        f"(CASE WHEN jsonb_typeof({col} -> {key}) = 'number' "
        f"THEN CAST({col} ->> {key} AS DOUBLE PRECISION) END)"
    )


@compiles(JsonBool, "postgresql")
def _bool_pg(element: JsonBool, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = compiler.process(element.column, **kw), _literal(element.json_key)
    return (
        f"(CASE WHEN jsonb_typeof({col} -> {key}) = 'boolean' "
        f"THEN CAST({col} ->> {key} AS BOOLEAN) END)"
    )


@compiles(JsonPresent, "postgresql")
def _present_pg(element: JsonPresent, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = compiler.process(element.column, **kw), _literal(element.json_key)
    return f"(coalesce(jsonb_typeof({col} -> {key}), 'null') <> 'null')"


@compiles(JsonKey, "sqlite")
def _key_sqlite(element: JsonKey, compiler: SQLCompiler, **kw: Any) -> str:
    col, path = compiler.process(element.column, **kw), _sqlite_path(element.json_key)
    return (
        f"(CASE json_type({col}, {path}) WHEN 'text' THEN json_extract({col}, {path}) "
        f"WHEN 'integer' THEN CAST(json_extract({col}, {path}) AS TEXT) END)"
    )


@compiles(JsonKey, "postgresql")
def _key_pg(element: JsonKey, compiler: SQLCompiler, **kw: Any) -> str:
    col, key = compiler.process(element.column, **kw), _literal(element.json_key)
    return (
        f"(CASE WHEN jsonb_typeof({col} -> {key}) = 'string' THEN {col} ->> {key} "
        f"WHEN jsonb_typeof({col} -> {key}) = 'number' AND ({col} ->> {key}) ~ '^-?[0-9]+$' "
        f"THEN {col} ->> {key} END)"
    )
