"""The condition language (`Ops`) as SQL expressions; `engine.rules.conditions` holds the
Python predicates of the reference evaluator, which these must agree with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, false, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from engine.rules.conditions import Kind, kind_of, orderings
from engine.rules.language import Ops

# Given a kind, the SQL value of that kind, or None when the source cannot hold that kind.
SqlReader = Callable[[Kind], ColumnElement[Any] | None]
SqlPresent = ColumnElement[bool]


def sql_condition(ops: Ops, read: SqlReader, present: SqlPresent) -> ColumnElement[bool]:
    clauses: list[ColumnElement[bool]] = []
    if ops.eq is not None:
        clauses.append(_sql_any_of(read, [ops.eq]))
    if ops.in_ is not None:
        clauses.append(_sql_any_of(read, list(ops.in_)))
    if ops.ne is not None:
        clauses.append(_sql_none_of(read, [ops.ne]))
    if ops.not_in is not None:
        clauses.append(_sql_none_of(read, list(ops.not_in)))
    number = read("number")
    for bound, compare in orderings(ops):
        if bound is not None:
            clauses.append(false() if number is None else compare(number, bound))
    if ops.exists is not None:
        clauses.append(present if ops.exists else not_(present))
    return and_(true(), *clauses)


def _by_kind(values: Sequence[object]) -> dict[Kind, list[object]]:
    groups: dict[Kind, list[object]] = {}
    for value in values:
        kind = kind_of(value)
        if kind is not None:
            groups.setdefault(kind, []).append(value)
    return groups


def _sql_any_of(read: SqlReader, values: Sequence[object]) -> ColumnElement[bool]:
    parts = []
    for kind, group in _by_kind(values).items():
        column = read(kind)
        if column is not None:
            parts.append(column.in_(group))
    return or_(false(), *parts)


def _sql_none_of(read: SqlReader, values: Sequence[object]) -> ColumnElement[bool]:
    # Absent, or of another kind, or of this kind and not listed: NULL-safe on purpose.
    parts = []
    for kind, group in _by_kind(values).items():
        column = read(kind)
        if column is not None:
            parts.append(or_(column.is_(None), column.not_in(group)))
    return and_(true(), *parts)
