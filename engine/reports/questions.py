"""The playbook's burning questions, answered from events for the users who signed up in the
period. Event names come from `reports.events` in the config (Airtouch's by default)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from engine.config import ReportsConfig
from engine.reports.context import By, ReportContext
from engine.reports.first_run import first_run_table
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
from engine.reports.periods import DAY, Period
from engine.reports.sql import (
    Facts,
    count_if,
    event_facts,
    group_columns,
    group_label,
    in_period,
    within,
)
from engine.sql.schema import users


def build(ctx: ReportContext) -> Report:
    cfg = ctx.config
    by_persona: By = ctx.by or "persona"  # the playbook asks this one by persona
    rows = _signup_rows(ctx, ctx.by)
    tables = (
        first_workflow_table(rows, cfg, ctx.by),
        invite_first_table(rows, cfg, ctx.by),
        invited_users_table(rows, cfg, ctx.by),
        first_run_table(ctx),
        unverified_table(rows, cfg, ctx.by),
        unverified_actions_table(rows, cfg, ctx.by),
        started_not_saved_table(_signup_rows(ctx, by_persona), cfg, by_persona),
    )
    return Report("questions", "The burning questions", ctx.period, tables)


# ---- one grouped pass over the signups answers every per-user question -----------------


def _signup_rows(ctx: ReportContext, by: By | None) -> list[dict[str, Any]]:
    rows = ctx.store.reads.report_rows(signup_query(ctx.config, ctx.period, by))
    return [{**row._mapping, "group": group_label(row, by)} for row in rows]


def signup_query(cfg: ReportsConfig, period: Period, by: By | None) -> Select[Any]:
    ev = cfg.events
    facts = event_facts(
        [
            ev.workflow_created,
            ev.workflow_started,
            ev.invite_sent,
            ev.connection_created,
            ev.email_verified,
            *cfg.key_events,
        ],
        period.as_of,
    )
    dims = group_columns(by)
    return (
        select(*dims, *_counts(cfg, facts))
        .select_from(users.outerjoin(facts.subquery, facts.subquery.c.user_id == users.c.id))
        .where(in_period(users.c.signed_up_at, period))
        .group_by(*dims)
        .order_by(*dims)
    )


def _counts(cfg: ReportsConfig, facts: Facts) -> list[ColumnElement[Any]]:
    ev = cfg.events
    workflow = facts.first(ev.workflow_created)
    first_day = within(users.c.signed_up_at, workflow, DAY)
    invite = facts.first(ev.invite_sent)
    invited = or_(users.c.invited_by.is_not(None), users.c.signup_source == cfg.invited_source)
    unverified = facts.never(ev.email_verified)
    key_done = [facts.did(name) for name in cfg.key_events]
    return [
        func.count().label("signed_up"),
        count_if(first_day).label("workflow_24h"),
        count_if(and_(first_day, facts.count(ev.workflow_created) >= 2)).label("workflow_24h_more"),
        count_if(facts.did(ev.workflow_created)).label("workflow_ever"),
        count_if(and_(invite.is_not(None), or_(workflow.is_(None), invite < workflow))).label(
            "invite_first"
        ),
        count_if(invited).label("invited"),
        count_if(
            and_(invited, facts.never(ev.connection_created), facts.never(ev.workflow_created))
        ).label("invited_nothing"),
        count_if(
            and_(invited, facts.did(ev.connection_created), facts.never(ev.workflow_created))
        ).label("invited_connections_only"),
        count_if(and_(invited, facts.did(ev.workflow_created))).label("invited_workflows"),
        count_if(unverified).label("unverified"),
        count_if(and_(unverified, or_(*key_done))).label("unverified_acted"),
        *(
            count_if(and_(unverified, done)).label(f"unverified_did_{index}")
            for index, done in enumerate(key_done)
        ),
        count_if(facts.did(ev.workflow_started)).label("started"),
        count_if(and_(facts.did(ev.workflow_started), facts.never(ev.workflow_created))).label(
            "started_not_saved"
        ),
    ]


def _label(by: By | None) -> tuple[str, ...]:
    return ("group",) if by else ()


# ---- Q1: first workflow within 24h ----------------------------------------------------


def first_workflow_table(rows: Sequence[Row], cfg: ReportsConfig, by: By | None) -> Table:
    name = cfg.events.workflow_created
    out = [
        {
            "group": r["group"],
            "signed_up": r["signed_up"],
            **count_rate("workflow_24h", r["workflow_24h"], r["signed_up"]),
            **count_rate("workflow_24h_more", r["workflow_24h_more"], r["workflow_24h"]),
            **count_rate("workflow_ever", r["workflow_ever"], r["signed_up"]),
        }
        for r in rows
    ]
    return Table(
        id="first_workflow_24h",
        title="Who creates their first workflow within 24h of signup, and who creates more?",
        columns=(
            *group_heading(by),
            Column("signed_up", "Signed up", "count"),
            *count_rate_columns("workflow_24h", "First workflow ≤ 24h", "% of signups"),
            *count_rate_columns("workflow_24h_more", "…and more than one", "% of those"),
            *count_rate_columns("workflow_ever", "Workflow ever", "% of signups"),
        ),
        rows=tuple(out),
        definitions=(
            "Signed up: users whose signup time is in the period.",
            f"First workflow ≤ 24h: their first `{name}` event came at most 24 hours after signup.",
            f"More than one: of those, users with two or more `{name}` events (to date).",
            f"Workflow ever: users with any `{name}` event (to date).",
        ),
        chart=BarChart(
            "First workflow within 24h",
            _label(by) or ("signed_up",),
            (("workflow_24h_rate", "first workflow ≤ 24h"), ("workflow_ever_rate", "ever")),
        ),
    )


# ---- Q2: invites before the first workflow; what invited users do ---------------------


def invite_first_table(rows: Sequence[Row], cfg: ReportsConfig, by: By | None) -> Table:
    ev = cfg.events
    out = [
        {
            "group": r["group"],
            "signed_up": r["signed_up"],
            **count_rate("invite_first", r["invite_first"], r["signed_up"]),
        }
        for r in rows
    ]
    return Table(
        id="invite_before_workflow",
        title="Who invites a colleague before creating their first workflow?",
        columns=(
            *group_heading(by),
            Column("signed_up", "Signed up", "count"),
            *count_rate_columns("invite_first", "Invited before first workflow", "% of signups"),
        ),
        rows=tuple(out),
        definitions=(
            f"Invited before first workflow: the user's first `{ev.invite_sent}` came before "
            f"their first `{ev.workflow_created}`, or they invited and never created one.",
        ),
    )


def invited_users_table(rows: Sequence[Row], cfg: ReportsConfig, by: By | None) -> Table:
    ev = cfg.events
    out = [
        {
            "group": r["group"],
            "invited": r["invited"],
            **count_rate("connections_only", r["invited_connections_only"], r["invited"]),
            **count_rate("workflows", r["invited_workflows"], r["invited"]),
            **count_rate("nothing", r["invited_nothing"], r["invited"]),
        }
        for r in rows
    ]
    return Table(
        id="invited_users",
        title="Invited users: connections only, or workflows too?",
        columns=(
            *group_heading(by),
            Column("invited", "Invited users", "count"),
            *count_rate_columns("connections_only", "Connections only"),
            *count_rate_columns("workflows", "Built workflows"),
            *count_rate_columns("nothing", "Neither"),
        ),
        rows=tuple(out),
        definitions=(
            "Invited users: signed up in the period with an inviter (invited_by) or the "
            f"signup source `{cfg.invited_source}`.",
            f"Connections only: a `{ev.connection_created}` but no `{ev.workflow_created}`; "
            f"built workflows: any `{ev.workflow_created}`; neither: none of the two (to date).",
        ),
        chart=BarChart(
            "What invited users do",
            _label(by) or ("invited",),
            (
                ("connections_only_rate", "connections only"),
                ("workflows_rate", "built workflows"),
                ("nothing_rate", "neither"),
            ),
        ),
    )


# Q3, time to the first workflow run, counts accounts, not signups: see `first_run`.


# ---- Q4: never verified, and what they did anyway -------------------------------------


def unverified_table(rows: Sequence[Row], cfg: ReportsConfig, by: By | None) -> Table:
    out = [
        {
            "group": r["group"],
            "signed_up": r["signed_up"],
            **count_rate("unverified", r["unverified"], r["signed_up"]),
            **count_rate("acted", r["unverified_acted"], r["unverified"]),
        }
        for r in rows
    ]
    return Table(
        id="unverified",
        title="Who never verified their email, and did they still act?",
        columns=(
            *group_heading(by),
            Column("signed_up", "Signed up", "count"),
            *count_rate_columns("unverified", "Never verified", "% of signups"),
            *count_rate_columns("acted", "Did a key action anyway", "% of unverified"),
        ),
        rows=tuple(out),
        definitions=(
            f"Never verified: no `{cfg.events.email_verified}` event (to date).",
            f"Key actions (reports.key_events): {', '.join(cfg.key_events)}; the next table "
            "breaks them down.",
        ),
        chart=BarChart(
            "Never verified, and acted anyway",
            _label(by) or ("signed_up",),
            (("unverified_rate", "never verified"), ("acted_rate", "of those, acted")),
        ),
    )


def unverified_actions_table(rows: Sequence[Row], cfg: ReportsConfig, by: By | None) -> Table:
    out = [
        {
            "group": r["group"],
            "action": name,
            **count_rate("users", r[f"unverified_did_{index}"], r["unverified"], "share"),
        }
        for r in rows
        for index, name in enumerate(cfg.key_events)
    ]
    return Table(
        id="unverified_actions",
        title="Key actions of users who never verified",
        columns=(
            *group_heading(by),
            Column("action", "Key action"),
            *count_rate_columns("users", "Unverified users who did it", "% of unverified", "share"),
        ),
        rows=tuple(out),
        definitions=("Each key action at least once, to date, by a never-verified user.",),
    )


# ---- Q5: started a workflow, never saved one ------------------------------------------


def started_not_saved_table(rows: Sequence[Row], cfg: ReportsConfig, by: By) -> Table:
    ev = cfg.events
    out = [
        {
            "group": r["group"],
            "signed_up": r["signed_up"],
            "started": r["started"],
            **count_rate("not_saved", r["started_not_saved"], r["started"]),
        }
        for r in rows
    ]
    return Table(
        id="started_not_saved",
        title=f"Who started a workflow but never saved one, by {by.replace('_', ' ')}?",
        columns=(
            *group_heading(by),
            Column("signed_up", "Signed up", "count"),
            Column("started", "Started a workflow", "count"),
            *count_rate_columns("not_saved", "Never saved one", "% of starters"),
        ),
        rows=tuple(out),
        definitions=(
            f"Started: any `{ev.workflow_started}`; never saved: and no `{ev.workflow_created}` "
            "at all (to date).",
        ),
        chart=BarChart(
            "Started but never saved (share of starters)",
            ("group",),
            (("not_saved_rate", "never saved"),),
        ),
    )
