"""SQL building blocks shared by the reports, the same on SQLite and PostgreSQL.

Time arithmetic differs between the two (SQLite stores text, PostgreSQL timestamps), so every
report does it on whole seconds since 1970 (`Epoch`): differences, windows ("within 24h") and
week buckets are then plain integer arithmetic that both databases agree on, at one-second
resolution. Month buckets need the calendar, hence `MonthNumber`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Subquery

from engine.reports.periods import SECONDS_PER_DAY, Period
from engine.sql.dialect import Epoch
from engine.sql.schema import events, users

GROUPS = {"persona": users.c.persona, "signup_source": users.c.signup_source}
NO_VALUE = "(none)"  # how a user without a persona (or source) is labelled


def seconds_between(start: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[int]:
    return Epoch(end) - Epoch(start)


def within(
    start: ColumnElement[Any], moment: ColumnElement[Any], span: timedelta
) -> ColumnElement[bool]:
    """`start <= moment <= start + span`, both ends inclusive."""
    return and_(moment >= start, Epoch(moment) <= Epoch(start) + int(span.total_seconds()))


def week_index(column: ColumnElement[Any]) -> ColumnElement[int]:
    """Monday-based weeks since 1969-12-29 (`periods.week_start` turns it into a date):
    1970-01-01 was a Thursday, so day d falls in week (d + 3) // 7."""
    day: ColumnElement[int] = Epoch(column) // SECONDS_PER_DAY
    return (day + 3) // 7


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """COUNT of the rows where `condition` holds (COUNT skips the NULLs of the other rows)."""
    return func.count(case((condition, 1)))


def in_period(column: ColumnElement[Any], period: Period) -> ColumnElement[bool]:
    lower = true() if period.start is None else column >= period.start
    return and_(lower, column < period.end)


def group_columns(by: str | None) -> list[ColumnElement[Any]]:
    """The users column a report is broken down by, labelled `group`; none for no breakdown
    (a constant in GROUP BY is an error on PostgreSQL, so "no breakdown" groups by nothing)."""
    if by is None:
        return []
    return [GROUPS[by].label("group")]


def group_label(row: Any, by: str | None) -> str:
    if by is None:
        return "all"
    value = row._mapping["group"]
    return NO_VALUE if value is None else str(value)


def unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Facts:
    """Per user, the first time and the number of times of each named event (one grouped
    pass over the events instead of one subquery per question)."""

    subquery: Subquery
    names: tuple[str, ...]

    def first(self, name: str) -> ColumnElement[Any]:
        return self.subquery.c[f"first_{self.names.index(name)}"]

    def count(self, name: str) -> ColumnElement[Any]:
        return self.subquery.c[f"count_{self.names.index(name)}"]

    def did(self, name: str) -> ColumnElement[bool]:
        return self.first(name).is_not(None)

    def never(self, name: str) -> ColumnElement[bool]:
        return self.first(name).is_(None)


def event_facts(names: Sequence[str], as_of: datetime) -> Facts:
    distinct = tuple(unique(names))
    columns: list[ColumnElement[Any]] = []
    for index, name in enumerate(distinct):
        is_name = events.c.name == name
        columns.append(func.min(case((is_name, events.c.occurred_at))).label(f"first_{index}"))
        columns.append(count_if(is_name).label(f"count_{index}"))
    subquery = (
        select(events.c.user_id, *columns)
        .where(events.c.name.in_(distinct), events.c.occurred_at <= as_of)
        .group_by(events.c.user_id)
        .subquery("facts")
    )
    return Facts(subquery, distinct)


def first_activation(event: str, as_of: datetime, *also: ColumnElement[bool]) -> Subquery:
    """Per user, the time of their first `event` at or after signup, as of `as_of`
    (`activated_at`); `also` narrows the users (e.g. to the period's signups)."""
    return (
        select(events.c.user_id, func.min(events.c.occurred_at).label("activated_at"))
        .select_from(events.join(users, users.c.id == events.c.user_id))
        .where(
            events.c.name == event,
            events.c.occurred_at >= users.c.signed_up_at,
            events.c.occurred_at <= as_of,
            *also,
        )
        .group_by(events.c.user_id)
        .subquery("first_activation")
    )
