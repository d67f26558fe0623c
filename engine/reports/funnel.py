"""Funnel: an ordered list of events (`reports.funnel`, or `--steps a,b,c`), how many of the
users who signed up in the period reach each step in order, and how long each step takes."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import CTE, Select, and_, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from engine.reports.context import By, ReportContext
from engine.reports.model import BarChart, Column, Report, Row, Table, group_heading
from engine.reports.periods import Period
from engine.reports.sql import group_label, in_period, seconds_between
from engine.reports.stats import median, percentile, rate
from engine.sql.schema import events, users

SIGNED_UP = "signed up"


def build(ctx: ReportContext) -> Report:
    steps = ctx.steps or tuple(ctx.config.funnel)
    chain = step_ctes(steps, ctx.period)
    by: By = ctx.by or "persona"  # the playbook reads funnels by persona
    tables = (_table(ctx, chain, steps, None), _table(ctx, chain, steps, by))
    return Report("funnel", "Funnel: " + " → ".join(steps), ctx.period, tables)


def step_ctes(steps: Sequence[str], period: Period) -> list[CTE]:
    """Step 0: the signups of the period (with their signup time). Step i: those of step i-1
    who did event i at or after they reached step i-1, with the first such time."""
    chain = [
        select(
            users.c.id.label("user_id"),
            users.c.persona,
            users.c.signup_source,
            users.c.signed_up_at.label("at"),
        )
        .where(in_period(users.c.signed_up_at, period))
        .cte("step_0")
    ]
    for index, name in enumerate(steps, start=1):
        previous, done = chain[-1], events.alias(f"done_{index}")
        reached = and_(
            done.c.user_id == previous.c.user_id,
            done.c.name == name,
            done.c.occurred_at >= previous.c.at,
            done.c.occurred_at <= period.as_of,
        )
        chain.append(
            select(previous.c.user_id, func.min(done.c.occurred_at).label("at"))
            .select_from(previous.join(done, reached))
            .group_by(previous.c.user_id)
            .cte(f"step_{index}")
        )
    return chain


def _joined(chain: Sequence[CTE]) -> FromClause:
    start = chain[0]
    joined: FromClause = start
    for step in chain[1:]:
        joined = joined.outerjoin(step, step.c.user_id == start.c.user_id)
    return joined


def _dims(chain: Sequence[CTE], by: By | None) -> list[ColumnElement[Any]]:
    return [chain[0].c[by].label("group")] if by else []


def counts_query(chain: Sequence[CTE], by: By | None) -> Select[Any]:
    dims = _dims(chain, by)
    reached = [func.count(step.c.at).label(f"reached_{i}") for i, step in enumerate(chain)]
    return select(*dims, *reached).select_from(_joined(chain)).group_by(*dims).order_by(*dims)


def durations_query(chain: Sequence[CTE], by: By | None) -> Select[Any]:
    """Per user, the seconds each step took (NULL where not reached); the medians are taken
    in Python from these lists (a dialect-neutral percentile in SQL is impractical)."""
    spans = [
        seconds_between(before.c.at, after.c.at).label(f"took_{i}")
        for i, (before, after) in enumerate(itertools.pairwise(chain), start=1)
    ]
    return select(*_dims(chain, by), *spans).select_from(_joined(chain))


def _table(ctx: ReportContext, chain: Sequence[CTE], steps: Sequence[str], by: By | None) -> Table:
    took: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in ctx.store.reads.report_rows(durations_query(chain, by)):
        for i in range(1, len(chain)):
            value = row._mapping[f"took_{i}"]
            if value is not None:
                took[group_label(row, by)][i].append(float(value))
    rows: list[Row] = []
    for row in ctx.store.reads.report_rows(counts_query(chain, by)):
        group = group_label(row, by)
        rows.extend(_step_rows(row._mapping, group, steps, took[group]))
    name = "Funnel" + (f" by {by.replace('_', ' ')}" if by else "")
    return Table(
        id="funnel_" + (by or "all"),
        title=name,
        columns=(
            *group_heading(by),
            Column("step", "Step", "count"),
            Column("event", "Event"),
            Column("users", "Users", "count"),
            Column("from_previous", "From previous step", "rate"),
            Column("from_start", "From signup", "rate"),
            Column("median_time", "Median time from previous", "duration"),
            Column("p90_time", "p90 time", "duration"),
        ),
        rows=tuple(rows),
        definitions=(
            "Step 0: users who signed up in the period. Step i: users of step i-1 who did its "
            "event at or after the time they reached step i-1 (their first such event).",
            "From previous step = users at step i / users at step i-1; from signup = users at "
            "step i / signups.",
            "Time from previous: from reaching step i-1 to the first event of step i; median "
            "and 90th percentile among users who reached step i.",
        ),
        chart=BarChart(
            name + ": share of signups reaching each step",
            ("group", "event") if by else ("event",),
            (("from_start", "from signup"),),
        ),
    )


def _step_rows(
    counts: Any, group: str, steps: Sequence[str], took: dict[int, list[float]]
) -> list[Row]:
    start = counts["reached_0"]
    rows: list[Row] = []
    for i, event in enumerate([SIGNED_UP, *steps]):
        users_at = counts[f"reached_{i}"]
        rows.append(
            {
                "group": group,
                "step": i,
                "event": event,
                "users": users_at,
                "from_previous": rate(users_at, counts[f"reached_{i - 1}"]) if i else None,
                "from_start": rate(users_at, start),
                "median_time": median(took[i]) if i else None,
                "p90_time": percentile(took[i], 90) if i else None,
            }
        )
    return rows
