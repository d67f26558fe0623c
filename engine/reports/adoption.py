"""Adoption: the adoption rate (active users / signed-up users) and the feature adoption rate
of each configured feature (its users / users who logged in during the period). "Active" is
`reports.active` (an event and a window) in the config; features are `reports.features`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from engine.config import ReportsConfig
from engine.durations import format_duration
from engine.reports.context import By, ReportContext
from engine.reports.model import (
    BarChart,
    Column,
    Report,
    Row,
    Table,
    count_rate,
    count_rate_columns,
    group_heading,
)
from engine.reports.periods import Period
from engine.reports.sql import count_if, group_columns, group_label, in_period, unique
from engine.sql.schema import events, users


def build(ctx: ReportContext) -> Report:
    tables = (adoption_table(ctx), feature_table(ctx))
    return Report("adoption", "Adoption: active users and feature adoption", ctx.period, tables)


def _did(name: str, start: Any, end: Any, as_of: Any) -> ColumnElement[bool]:
    """The user (of the outer query) did `name` in [start, end), as of `as_of`. An IN over
    one uncorrelated subquery: the database finds those users once, where a correlated
    EXISTS per user may scan the event's whole time range for every user (SQLite does)."""
    lower = [] if start is None else [events.c.occurred_at >= start]
    doers = select(events.c.user_id).where(
        events.c.name == name, *lower, events.c.occurred_at < end, events.c.occurred_at <= as_of
    )
    return users.c.id.in_(doers)


def adoption_query(cfg: ReportsConfig, period: Period, by: By | None) -> Select[Any]:
    active = cfg.active
    dims = group_columns(by)
    start = period.end - active.window
    return (
        select(
            *dims,
            func.count().label("signed_up"),
            count_if(_did(active.event, start, period.end, period.as_of)).label("active"),
        )
        .where(in_period(users.c.signed_up_at, period))
        .group_by(*dims)
        .order_by(*dims)
    )


def feature_query(cfg: ReportsConfig, period: Period, by: By | None) -> Select[Any]:
    """Per group: users who logged in during the period, and how many of them used each
    feature during the period (columns `feature_<i>`, in `reports.features` order)."""
    logged_in = (
        select(events.c.user_id)
        .where(
            events.c.name == cfg.events.login,
            in_period(events.c.occurred_at, period),
            events.c.occurred_at <= period.as_of,
        )
        .distinct()
        .subquery("logged_in")
    )
    dims = group_columns(by)
    features = [
        count_if(_did(name, period.start, period.end, period.as_of)).label(f"feature_{index}")
        for index, name in enumerate(unique(cfg.features))
    ]
    return (
        select(*dims, func.count().label("logged_in"), *features)
        .select_from(logged_in.join(users, users.c.id == logged_in.c.user_id))
        .group_by(*dims)
        .order_by(*dims)
    )


def adoption_table(ctx: ReportContext) -> Table:
    cfg, by = ctx.config, ctx.by
    rows = [
        {
            "group": group_label(row, by),
            "signed_up": row.signed_up,
            **count_rate("active", row.active, row.signed_up, "adoption_rate"),
        }
        for row in ctx.store.reads.report_rows(adoption_query(cfg, ctx.period, by))
    ]
    window = format_duration(cfg.active.window)
    return Table(
        id="adoption_rate",
        title="Adoption rate",
        columns=(
            *group_heading(by),
            Column("signed_up", "Signed up", "count"),
            *count_rate_columns("active", "Active", "Adoption rate", "adoption_rate"),
        ),
        rows=tuple(rows),
        definitions=(
            "Signed up: users whose signup time is in the period.",
            f"Active: of those, users with a `{cfg.active.event}` event in the {window} before "
            "the end of the period (reports.active).",
            "Adoption rate = active / signed up.",
        ),
        chart=BarChart("Adoption rate", ("group",), (("adoption_rate", "adoption rate"),)),
    )


def feature_table(ctx: ReportContext) -> Table:
    cfg, by = ctx.config, ctx.by
    names = unique(cfg.features)
    rows: list[Row] = []
    for row in ctx.store.reads.report_rows(feature_query(cfg, ctx.period, by)):
        for index, name in enumerate(names):
            used = row._mapping[f"feature_{index}"]
            rows.append(
                {
                    "group": group_label(row, by),
                    "feature": name,
                    "logged_in": row.logged_in,
                    **count_rate("users", used, row.logged_in, "far"),
                }
            )
    return Table(
        id="feature_adoption",
        title="Feature adoption rate (FAR)",
        columns=(
            *group_heading(by),
            Column("feature", "Feature (event)"),
            Column("logged_in", "Logged in", "count"),
            *count_rate_columns("users", "Used the feature", "FAR", "far"),
        ),
        rows=tuple(rows),
        definitions=(
            f"Logged in: users with a `{cfg.events.login}` event in the period (whenever they "
            "signed up).",
            "Used the feature: of those, users with the feature's event in the period.",
            "FAR (feature adoption rate) = used the feature / logged in.",
        ),
        chart=BarChart("Feature adoption rate", ("feature", "group"), (("far", "FAR"),)),
    )
