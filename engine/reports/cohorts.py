"""Cohorts: users grouped by the calendar month they signed up (or activated), and the share
of each cohort active in each month since; second-month and 12-month retention, and the month
where churn peaks. Activity is any of `reports.retention_events`."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.expression import Subquery

from engine.config import ReportsConfig
from engine.reports.context import CohortBy, ReportContext
from engine.reports.model import Column, Heatmap, Report, Row, Table
from engine.reports.periods import Period, month_label, month_number
from engine.reports.sql import first_activation, in_period, unique
from engine.reports.stats import rate
from engine.sql.dialect import MonthNumber
from engine.sql.schema import events, users

MAX_MONTHS = 12  # columns M0..M12: enough for the annual retention the playbook asks for


def build(ctx: ReportContext) -> Report:
    cohorts = load(ctx)
    last = month_number(ctx.period.as_of)
    tables = (retention_table(cohorts, last, ctx), summary_table(cohorts, last, ctx))
    title = f"Monthly cohorts by {ctx.cohort} month: retention"
    return Report("cohorts", title, ctx.period, tables)


@dataclass(frozen=True)
class Cohort:
    month: int  # month number (periods.month_number)
    size: int
    retained: Mapping[int, int]  # months since -> users active that month

    def observed(self, k: int, last: int) -> bool:
        return self.month + k <= last

    def share(self, k: int, last: int) -> float | None:
        if not self.observed(k, last):
            return None
        return rate(self.retained.get(k, 0), self.size)


def members(cfg: ReportsConfig, period: Period, cohort: CohortBy) -> Subquery:
    """Each user in a cohort of the period, with the cohort's month number."""
    if cohort == "signup":
        return (
            select(users.c.id.label("user_id"), MonthNumber(users.c.signed_up_at).label("cohort"))
            .where(in_period(users.c.signed_up_at, period))
            .subquery("members")
        )
    first = first_activation(cfg.activation_event, period.as_of)
    return (
        select(first.c.user_id, MonthNumber(first.c.activated_at).label("cohort"))
        .where(in_period(first.c.activated_at, period))
        .subquery("members")
    )


def sizes_query(people: Subquery) -> Select[Any]:
    return select(people.c.cohort, func.count().label("size")).group_by(people.c.cohort)


def cells_query(cfg: ReportsConfig, people: Subquery, period: Period) -> Select[Any]:
    since = MonthNumber(events.c.occurred_at) - people.c.cohort
    return (
        select(
            people.c.cohort,
            since.label("k"),
            func.count(func.distinct(people.c.user_id)).label("retained"),
        )
        .select_from(people.join(events, events.c.user_id == people.c.user_id))
        .where(
            events.c.name.in_(unique(cfg.retention_events)),
            events.c.occurred_at <= period.as_of,
            since >= 0,
            since <= MAX_MONTHS,
        )
        .group_by(people.c.cohort, since)
    )


def load(ctx: ReportContext) -> list[Cohort]:
    people = members(ctx.config, ctx.period, ctx.cohort)
    retained: dict[int, dict[int, int]] = defaultdict(dict)
    for row in ctx.store.reads.report_rows(cells_query(ctx.config, people, ctx.period)):
        retained[int(row.cohort)][int(row.k)] = int(row.retained)
    return [
        Cohort(int(row.cohort), int(row.size), retained[int(row.cohort)])
        for row in sorted(
            ctx.store.reads.report_rows(sizes_query(people)), key=lambda r: int(r.cohort)
        )
    ]


def _months(cohorts: Sequence[Cohort], last: int) -> range:
    oldest = min((c.month for c in cohorts), default=last)
    return range(min(last - oldest, MAX_MONTHS) + 1)


def retention_table(cohorts: Sequence[Cohort], last: int, ctx: ReportContext) -> Table:
    months = _months(cohorts, last)
    rows = [
        {
            "cohort": month_label(c.month),
            "size": c.size,
            **{f"m{k}": c.share(k, last) for k in months},
            **{f"retained_{k}": c.retained.get(k, 0) for k in months if c.observed(k, last)},
        }
        for c in cohorts
    ]
    events_list = ", ".join(f"`{e}`" for e in unique(ctx.config.retention_events))
    return Table(
        id="cohort_retention",
        title=f"Retention by {ctx.cohort} cohort (share of the cohort active in month k)",
        columns=(
            Column("cohort", f"{ctx.cohort.capitalize()} month"),
            Column("size", "Users", "count"),
            *(Column(f"m{k}", f"M{k}", "rate") for k in months),
        ),
        rows=tuple(rows),
        definitions=(
            f"Cohort: the calendar month (UTC) of the user's {_anchor(ctx)}, in the period.",
            f"Mk: the share of the cohort with any of {events_list} in the k-th calendar month "
            "after the cohort month (M0 = the cohort month itself); — = not reached yet.",
        ),
        chart=Heatmap("Retention heatmap", "cohort", tuple((f"m{k}", f"M{k}") for k in months)),
    )


def _anchor(ctx: ReportContext) -> str:
    if ctx.cohort == "signup":
        return "signup"
    return f"activation (first `{ctx.config.activation_event}`)"


def churn(retained: Sequence[int | None]) -> list[float | None]:
    """Churn in month k (k >= 1): 1 - retained_k / retained_(k-1); None where undefined."""
    out: list[float | None] = [None]
    for previous, current in itertools.pairwise(retained):
        out.append(None if not previous or current is None else 1 - current / previous)
    return out


def peak(rates: Sequence[float | None]) -> tuple[int | None, float | None]:
    """The month with the highest churn (the earliest on ties)."""
    best: tuple[int | None, float | None] = (None, None)
    for k, value in enumerate(rates):
        if value is not None and (best[1] is None or value > best[1]):
            best = (k, value)
    return best


def summary_table(cohorts: Sequence[Cohort], last: int, ctx: ReportContext) -> Table:
    months = _months(cohorts, last)
    rows = [_cohort_summary(c, last, months) for c in cohorts]
    if cohorts:
        rows.append(_pooled_summary(cohorts, last, months))
    return Table(
        id="cohort_summary",
        title="Retention and churn per cohort",
        columns=(
            Column("cohort", "Cohort"),
            Column("size", "Users", "count"),
            Column("second_month", "2nd-month retention", "rate"),
            Column("twelve_month", "12-month retention", "rate"),
            Column("churn_peak_month", "Churn peaks in month", "count"),
            Column("churn_peak", "Peak churn", "rate"),
        ),
        rows=tuple(rows),
        definitions=(
            "2nd-month retention: M1, the share active in the month after the cohort month; "
            "12-month retention: M12; — = not reached yet.",
            "Churn in month k: 1 - (active in month k) / (active in month k-1); it peaks in the "
            "month where it is highest (the earliest on ties).",
            "All cohorts: each month pools the cohorts that have reached it, so a cohort too "
            "young for month k counts in neither month k-1 nor k.",
        ),
    )


def _summary(
    label: str, size: int, shares: Sequence[float | None], churns: list[float | None]
) -> Row:
    month, value = peak(churns)
    return {
        "cohort": label,
        "size": size,
        "second_month": shares[1] if len(shares) > 1 else None,
        "twelve_month": shares[12] if len(shares) > 12 else None,
        "churn_peak_month": month,
        "churn_peak": value,
    }


def _cohort_summary(c: Cohort, last: int, months: range) -> Row:
    counts = [c.retained.get(k, 0) if c.observed(k, last) else None for k in months]
    shares = [c.share(k, last) for k in months]
    return _summary(month_label(c.month), c.size, shares, churn(counts))


def _pooled_summary(cohorts: Sequence[Cohort], last: int, months: range) -> Row:
    shares: list[float | None] = []
    churns: list[float | None] = []
    for k in months:
        reached = [c for c in cohorts if c.observed(k, last)]
        now = sum(c.retained.get(k, 0) for c in reached)
        shares.append(rate(now, sum(c.size for c in reached)))
        before = sum(c.retained.get(k - 1, 0) for c in reached) if k else 0
        churns.append(1 - now / before if before else None)
    return _summary("all cohorts", sum(c.size for c in cohorts), shares, churns)
