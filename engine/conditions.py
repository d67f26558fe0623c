"""One condition language (`Ops`), two implementations that must agree: SQL expressions
for the evaluator, Python predicates for the reference evaluator. Keeping them side by side
makes a change to one visibly incomplete without the other."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, false, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement

from engine.rules import Ops

Kind = str  # "text" | "number" | "bool"
# Given a kind, the SQL value of that kind, or None when the source cannot hold that kind.
SqlReader = Callable[[Kind], ColumnElement[Any] | None]
SqlPresent = ColumnElement[bool]


def kind_of(value: object) -> Kind | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


# ---- SQL -------------------------------------------------------------------------------


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
    for bound, compare in _orderings(ops):
        if bound is not None:
            clauses.append(false() if number is None else compare(number, bound))
    if ops.exists is not None:
        clauses.append(present if ops.exists else not_(present))
    return and_(true(), *clauses)


def _orderings(ops: Ops) -> list[tuple[float | None, Callable[[Any, Any], Any]]]:
    """The ordering operators with their comparison; the same for SQL columns and numbers."""
    return [
        (ops.gt, operator.gt),
        (ops.gte, operator.ge),
        (ops.lt, operator.lt),
        (ops.lte, operator.le),
    ]


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


# ---- Python ----------------------------------------------------------------------------


def py_condition(ops: Ops, actual: object) -> bool:
    """The reference semantics: type-strict equality, absent values match `ne`/`not_in`."""
    if ops.eq is not None and not _py_any_of(actual, [ops.eq]):
        return False
    if ops.in_ is not None and not _py_any_of(actual, list(ops.in_)):
        return False
    if ops.ne is not None and _py_any_of(actual, [ops.ne]):
        return False
    if ops.not_in is not None and _py_any_of(actual, list(ops.not_in)):
        return False
    number = actual if kind_of(actual) == "number" else None
    for bound, compare in _orderings(ops):
        if bound is not None and (number is None or not compare(number, bound)):
            return False
    return ops.exists is None or ops.exists == (actual is not None)


def _py_any_of(actual: object, values: Sequence[object]) -> bool:
    kind = kind_of(actual)
    return kind is not None and any(kind_of(v) == kind and v == actual for v in values)
