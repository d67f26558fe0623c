"""The query behind `lifecycle explain`: one row for one user, each of a rule's compiled
conditions (the very clauses the candidates query ANDs) as a 1/0 column, with the events or
ledger row that made a condition fail. Pure: builds the query, does not run it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from engine.rules.language import Rule
from engine.sql.candidates import USER_COLUMNS, Compiled, compile_rule, first_seen, suppression
from engine.sql.schema import deliveries, events, users


def explain_query(rule: Rule, user_id: str, now: datetime) -> Select[Any]:
    """One row for the user, whether or not they have an anchor: the anchor event is outer
    joined on the clauses that pick it, and every condition is a 1/0 column `check_<i>`."""
    compiled = compile_rule(rule, now)
    source: FromClause = users
    if compiled.anchor is not None:
        on = and_(compiled.anchor.c.user_id == users.c.id, *compiled.anchor_match)
        source = users.outerjoin(compiled.anchor, on)
    checks = [
        case((clause, 1), else_=0).label(f"check_{index}")
        for index, (_, clause) in enumerate(compiled.conditions)
    ]
    return (
        select(
            *USER_COLUMNS,
            *compiled.anchor_columns(),
            suppression().label("suppression_reason"),
            *checks,
            *_evidence(rule, compiled, now),
        )
        .select_from(source)
        .where(users.c.id == user_id)
    )


def _evidence(rule: Rule, compiled: Compiled, now: datetime) -> list[ColumnElement[Any]]:
    """What a failed condition points at: the offending event, the ledger row."""
    anchor_at = compiled.anchor_at
    columns = [_ledger(rule, compiled, c) for c in ("created_at", "status", "reason")]
    names = [item.event for item in rule.when.not_done if item.plain]
    if names:
        columns.append(first_seen(names, anchor_at, now, "name").label("not_done_name"))
        columns.append(first_seen(names, anchor_at, now, "occurred_at").label("not_done_at"))
    for index, item in enumerate(rule.when.done):
        if item.plain:
            seen = first_seen([item.event], anchor_at, now, "occurred_at")
            columns.append(seen.label(f"done_{index}"))
    if rule.when.anchor_event is not None:
        since = events.alias("since")
        columns.append(
            select(func.count())
            .where(since.c.user_id == users.c.id, since.c.name == rule.when.anchor_event)
            .scalar_subquery()
            .label("since_count")
        )
    return columns


def _ledger(rule: Rule, compiled: Compiled, column: str) -> ColumnElement[Any]:
    """The subject's latest ledger row for the rule (a repeating rule has several)."""
    return (
        select(deliveries.c[column])
        .where(deliveries.c.rule_id == rule.id, deliveries.c.subject == compiled.subject)
        .order_by(deliveries.c.id.desc())
        .limit(1)
        .scalar_subquery()
        .label(f"delivered_{column}")
    )
