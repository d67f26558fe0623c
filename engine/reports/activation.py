"""Activation: the product activation rate (PAR) and the time to first value (TTFV) per
signup week, per persona and per signup source, and per account-signup week for accounts.
The activation event and its window are `reports.activation_event` /
`reports.activation_within` in the config."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import Subquery

from engine.config import ReportsConfig
from engine.durations import format_duration
from engine.reports.accounts import account_weeks
from engine.reports.context import ReportContext
from engine.reports.model import (
    BarChart,
    Column,
    Report,
    Row,
    Table,
    count_rate,
    count_rate_columns,
)
from engine.reports.periods import Period, week_start
from engine.reports.sql import (
    NO_VALUE,
    count_if,
    first_activation,
    in_period,
    seconds_between,
    week_index,
    within,
)
from engine.reports.stats import percentile
from engine.sql.schema import users

Key = tuple[Any, ...]
HEADINGS = {"week": "Signup week", "persona": "Persona", "signup_source": "Signup source"}


def build(ctx: ReportContext) -> Report:
    people = signups(ctx.config, ctx.period)
    weekly: tuple[str, ...] = ("week", ctx.by) if ctx.by else ("week",)
    tables = (
        _table(ctx, people, "par_weekly", "Activation per signup week", weekly),
        _table(ctx, people, "par_persona", "Activation by persona", ("persona",)),
        _table(ctx, people, "par_signup_source", "Activation by signup source", ("signup_source",)),
        account_table(ctx),
    )
    return Report("activation", "Activation: PAR and time to first value", ctx.period, tables)


def signups(cfg: ReportsConfig, period: Period, span: timedelta | None = None) -> Subquery:
    """Users who signed up in the period, with when they first did the activation event (at
    or after signup) and whether that was within `span` of signup, ends inclusive (1) or not
    (0); `span` is the activation window unless given (PQLs: the trial)."""
    first = first_activation(
        cfg.activation_event, period.as_of, in_period(users.c.signed_up_at, period)
    )
    window = cfg.activation_within if span is None else span
    activated = within(users.c.signed_up_at, first.c.activated_at, window)
    return (
        select(
            users.c.persona,
            users.c.signup_source,
            users.c.signed_up_at,
            week_index(users.c.signed_up_at).label("week"),
            first.c.activated_at,
            case((activated, 1), else_=0).label("activated"),
        )
        .select_from(users.outerjoin(first, first.c.user_id == users.c.id))
        .where(in_period(users.c.signed_up_at, period))
        .subquery("signups")
    )


def counts_query(people: Subquery, keys: Sequence[str]) -> Select[Any]:
    columns: list[ColumnElement[Any]] = [people.c[k] for k in keys]
    return (
        select(
            *columns,
            func.count().label("signed_up"),
            count_if(people.c.activated == 1).label("activated"),
            func.max(people.c.signed_up_at).label("last_signup"),
        )
        .group_by(*columns)
        .order_by(*columns)
    )


def durations_query(people: Subquery, keys: Sequence[str]) -> Select[Any]:
    columns: list[ColumnElement[Any]] = [people.c[k] for k in keys]
    return select(
        *columns, seconds_between(people.c.signed_up_at, people.c.activated_at).label("seconds")
    ).where(people.c.activated == 1)


def _table(
    ctx: ReportContext, people: Subquery, table_id: str, title: str, keys: Sequence[str]
) -> Table:
    # Percentiles need the values: SQL lists each group's TTFVs, Python takes percentiles
    # (a dialect-neutral percentile in SQL is impractical: SQLite has none).
    ttfv: dict[Key, list[float]] = defaultdict(list)
    for row in ctx.store.reads.report_rows(durations_query(people, keys)):
        ttfv[tuple(row[:-1])].append(float(row.seconds))
    rows = [
        _row(row._mapping, keys, ttfv[tuple(row[: len(keys)])], ctx)
        for row in ctx.store.reads.report_rows(counts_query(people, keys))
    ]
    return Table(
        id=table_id,
        title=title,
        columns=(
            *(Column(k, HEADINGS[k]) for k in keys),
            Column("signed_up", "Signed up", "count"),
            *count_rate_columns("activated", "Activated", "PAR", "par"),
            Column("ttfv_median", "TTFV median", "duration"),
            Column("ttfv_p75", "TTFV p75", "duration"),
            Column("ttfv_p90", "TTFV p90", "duration"),
            Column("window", "Window"),
        ),
        rows=tuple(rows),
        definitions=_definitions(ctx.config),
        chart=BarChart(f"{title}: PAR", tuple(keys), (("par", "PAR"),)),
    )


def _row(counts: Any, keys: Sequence[str], ttfv: list[float], ctx: ReportContext) -> Row:
    labels = {k: key_label(k, counts[k]) for k in keys}
    last: datetime = counts["last_signup"]
    still_open = last + ctx.config.activation_within > ctx.period.as_of
    return {
        **labels,
        "signed_up": counts["signed_up"],
        **count_rate("activated", counts["activated"], counts["signed_up"], "par"),
        "ttfv_median": percentile(ttfv, 50),
        "ttfv_p75": percentile(ttfv, 75),
        "ttfv_p90": percentile(ttfv, 90),
        "window": "open" if still_open else "complete",
    }


def key_label(key: str, value: Any) -> str:
    """A row's label for a grouping key: a week index as its Monday, a missing value."""
    if key == "week":
        return week_start(int(value)).isoformat()
    return NO_VALUE if value is None else str(value)


def _definitions(cfg: ReportsConfig) -> tuple[str, ...]:
    window = format_duration(cfg.activation_within)
    return (
        f"Activated: the user's first `{cfg.activation_event}` (the activation event) came "
        f"within {window} of their signup (an event at exactly signup + {window} counts).",
        "PAR (product activation rate) = activated / signed up in the period.",
        "TTFV (time to first value): signup to the first activation event, among activated "
        "users; median, 75th and 90th percentiles (linear interpolation).",
        f"Window “open”: some users of the row signed up less than {window} ago, so its PAR "
        "may still rise.",
        "Signup weeks start on Monday (UTC).",
    )


# ---- accounts --------------------------------------------------------------------------


def account_table(ctx: ReportContext) -> Table:
    """Account activation per account-signup week (no --by: an account mixes personas)."""
    cfg = ctx.config
    rows = [
        {
            "week": week.week,
            "accounts": week.accounts,
            **count_rate("activated", week.reached, week.accounts, "par"),
            "ttfv_median": percentile(week.seconds, 50),
            "ttfv_p75": percentile(week.seconds, 75),
            "ttfv_p90": percentile(week.seconds, 90),
            "window": week.window(cfg.activation_within, ctx.period.as_of),
        }
        for week in account_weeks(ctx, cfg.activation_within, durations=True)
    ]
    title = "Account activation per account-signup week"
    return Table(
        id="account_activation_weekly",
        title=title,
        columns=(
            Column("week", "Account week"),
            Column("accounts", "Accounts", "count"),
            *count_rate_columns("activated", "Activated", "PAR", "par"),
            Column("ttfv_median", "TTFV median", "duration"),
            Column("ttfv_p75", "TTFV p75", "duration"),
            Column("ttfv_p90", "TTFV p90", "duration"),
            Column("window", "Window"),
        ),
        rows=tuple(rows),
        definitions=_account_definitions(cfg),
        chart=BarChart(f"{title}: PAR", ("week",), (("par", "PAR"),)),
    )


def _account_definitions(cfg: ReportsConfig) -> tuple[str, ...]:
    window = format_duration(cfg.activation_within)
    return (
        "Accounts: account ids (users.account_id; a user without one is an account alone) "
        "whose first member signed up in the period. The account's start is that first "
        "signup; its week (Monday, UTC) is the start's.",
        f"Activated: some member's first `{cfg.activation_event}` (at or after that member's "
        f"signup) came within {window} of the account's start, both ends inclusive.",
        "PAR = activated accounts / accounts. TTFV: the account's start to the first "
        "activation event by any member, among activated accounts; median, 75th and 90th "
        "percentiles.",
        f"Window “open”: some accounts of the row started less than {window} ago.",
        "--by does not apply: an account mixes personas and sources.",
    )
