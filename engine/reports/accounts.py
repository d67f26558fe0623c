"""Accounts (B2B workspaces) in the reports: who belongs to which, when an account started,
and whether any of its members reached the activation event within a span of that start.

An account is a `users.account_id` (the id of the `accounts` table, from Segment `group`
calls); a user without one is an account alone. Its start is its first member's signup; its
week is that start's week. Members without a signup time are left out (they have no start to
count from). Shared by account activation (the activation report) and account PQLs."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, literal, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Subquery

from engine.config import ReportsConfig
from engine.reports.context import ReportContext
from engine.reports.periods import Period, week_start
from engine.reports.sql import (
    count_if,
    first_activation,
    in_period,
    seconds_between,
    week_index,
    within,
)
from engine.sql.schema import users


def account_key() -> ColumnElement[Any]:
    """The account of a user: `users.account_id`, or the user alone (`user:<id>`)."""
    return func.coalesce(users.c.account_id, literal("user:") + users.c.id)


def account_trials(cfg: ReportsConfig, period: Period, span: timedelta) -> Subquery:
    """Accounts whose first member signed up in the period: `account`, `started_at` (that
    first signup), `week` (of `started_at`), `activated_at` (the earliest first activation
    event of any member, each at or after that member's own signup, as of `period.as_of`)
    and `reached` (1 when `activated_at` is within `span` of `started_at`, ends inclusive)."""
    # Members of an account that started in the period signed up in it or later, so only
    # their activations are looked for; every user still counts towards the account's start.
    later = () if period.start is None else (users.c.signed_up_at >= period.start,)
    first = first_activation(cfg.activation_event, period.as_of, *later)
    key = account_key()
    grouped = (
        select(
            key.label("account"),
            func.min(users.c.signed_up_at).label("started_at"),
            func.min(first.c.activated_at).label("activated_at"),
        )
        .select_from(users.outerjoin(first, first.c.user_id == users.c.id))
        .where(users.c.signed_up_at.is_not(None))
        .group_by(key)
        .subquery("account_starts")
    )
    reached = within(grouped.c.started_at, grouped.c.activated_at, span)
    return (
        select(
            grouped.c.account,
            grouped.c.started_at,
            week_index(grouped.c.started_at).label("week"),
            grouped.c.activated_at,
            case((reached, 1), else_=0).label("reached"),
        )
        .where(in_period(grouped.c.started_at, period))
        .subquery("account_trials")
    )


def weekly_counts_query(trials: Subquery) -> Select[Any]:
    return (
        select(
            trials.c.week,
            func.count().label("accounts"),
            count_if(trials.c.reached == 1).label("reached"),
            func.max(trials.c.started_at).label("last_start"),
        )
        .group_by(trials.c.week)
        .order_by(trials.c.week)
    )


def weekly_durations_query(trials: Subquery) -> Select[Any]:
    """Account start to first activation, for the accounts that reached it within the span."""
    return select(
        trials.c.week, seconds_between(trials.c.started_at, trials.c.activated_at).label("seconds")
    ).where(trials.c.reached == 1)


@dataclass(frozen=True)
class AccountWeek:
    week: str  # the Monday (ISO date) of the accounts' start
    accounts: int
    reached: int  # accounts whose members reached the activation event within the span
    last_start: datetime
    seconds: tuple[float, ...]  # start to first activation, of those (when asked for)

    def window(self, span: timedelta, as_of: datetime) -> str:
        """`open` when some account of the week started less than `span` before `as_of` (so
        `reached` may still rise), else `complete`."""
        return "open" if self.last_start + span > as_of else "complete"


def account_weeks(ctx: ReportContext, span: timedelta, *, durations: bool) -> list[AccountWeek]:
    """Per account week of the period, counted in SQL; with `durations`, the times to first
    activation too (listed by SQL, for percentiles in Python)."""
    trials = account_trials(ctx.config, ctx.period, span)
    read = ctx.store.reads.report_rows
    seconds: dict[int, list[float]] = defaultdict(list)
    if durations:
        for row in read(weekly_durations_query(trials)):
            seconds[int(row.week)].append(float(row.seconds))
    return [
        AccountWeek(
            week=week_start(int(row.week)).isoformat(),
            accounts=int(row.accounts),
            reached=int(row.reached),
            last_start=row.last_start,
            seconds=tuple(seconds[int(row.week)]),
        )
        for row in read(weekly_counts_query(trials))
    ]
