"""One condition language (`Ops`), two implementations that must agree: these Python
predicates for the reference evaluator, and the SQL expressions of `engine.sql.conditions`
for the evaluator. Both read a value's kind and the ordering operators from here, so a change
to the language shows up in both."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from engine.rules.language import Ops

Kind = str  # "text" | "number" | "bool"


def kind_of(value: object) -> Kind | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return None


def orderings(ops: Ops) -> list[tuple[float | None, Callable[[Any, Any], Any]]]:
    """The ordering operators with their comparison; the same for SQL columns and numbers."""
    return [
        (ops.gt, operator.gt),
        (ops.gte, operator.ge),
        (ops.lt, operator.lt),
        (ops.lte, operator.le),
    ]


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
    for bound, compare in orderings(ops):
        if bound is not None and (number is None or not compare(number, bound)):
            return False
    return ops.exists is None or ops.exists == (actual is not None)


def _py_any_of(actual: object, values: Sequence[object]) -> bool:
    kind = kind_of(actual)
    return kind is not None and any(kind_of(v) == kind and v == actual for v in values)
