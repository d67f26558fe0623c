"""Q3 of the burning questions: how long accounts take to run their first workflow. Per
account rather than per signup, so it has a query of its own and no --by breakdown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Select, and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from engine.config import ReportsConfig
from engine.reports.accounts import account_key
from engine.reports.context import ReportContext
from engine.reports.model import BarChart, Column, Table, count_rate, count_rate_columns
from engine.reports.periods import DAY, Period
from engine.reports.sql import count_if, in_period, seconds_between
from engine.sql.schema import events, users

THREE_DAYS = timedelta(days=3)


def first_run_query(cfg: ReportsConfig, period: Period) -> Select[Any]:
    account = account_key()  # users without an account are an account of their own
    accounts = (
        select(account.label("account"), func.min(users.c.signed_up_at).label("created_at"))
        .where(users.c.signed_up_at.is_not(None))
        .group_by(account)
        .subquery("accounts")
    )
    runs = (
        select(account.label("account"), func.min(events.c.occurred_at).label("first_run"))
        .select_from(events.join(users, users.c.id == events.c.user_id))
        .where(events.c.name == cfg.events.workflow_run, events.c.occurred_at <= period.as_of)
        .group_by(account)
        .subquery("runs")
    )
    delay = seconds_between(accounts.c.created_at, runs.c.first_run)
    day, three = int(DAY.total_seconds()), int(THREE_DAYS.total_seconds())
    columns: list[ColumnElement[Any]] = [
        func.count().label("accounts"),
        count_if(delay <= day).label("within_24h"),
        count_if(and_(delay > day, delay <= three)).label("within_3d"),
        count_if(delay > three).label("after_3d"),
        count_if(runs.c.first_run.is_(None)).label("never"),
    ]
    return (
        select(*columns)
        .select_from(accounts.outerjoin(runs, runs.c.account == accounts.c.account))
        .where(in_period(accounts.c.created_at, period))
    )


def first_run_table(ctx: ReportContext) -> Table:
    (row,) = ctx.store.reads.report_rows(first_run_query(ctx.config, ctx.period))
    total = row.accounts
    out: dict[str, Any] = {"accounts": total}
    for key in ("within_24h", "within_3d", "after_3d", "never"):
        out.update(count_rate(key, getattr(row, key), total))
    run = ctx.config.events.workflow_run
    return Table(
        id="first_run_accounts",
        title="When do accounts run their first workflow?",
        columns=(
            Column("accounts", "Accounts", "count"),
            *count_rate_columns("within_24h", "≤ 24h"),
            *count_rate_columns("within_3d", "24h-3 days"),
            *count_rate_columns("after_3d", "> 3 days"),
            *count_rate_columns("never", "Never (yet)"),
        ),
        rows=(out,),
        definitions=(
            "Accounts: account ids (a user without one is an account alone) whose first user "
            "signed up in the period; the account's start is that first signup.",
            f"Time to first run: from the account's start to the first `{run}` by any of its "
            "users. ≤ 24h; 24h-3 days: more than 24h, at most 72h; > 3 days: more than 72h.",
            "--by does not apply: an account mixes personas and sources.",
        ),
        chart=BarChart(
            "Accounts by time to first workflow run",
            ("accounts",),
            (
                ("within_24h_rate", "≤ 24h"),
                ("within_3d_rate", "24h-3 days"),
                ("after_3d_rate", "> 3 days"),
                ("never_rate", "never"),
            ),
        ),
    )
