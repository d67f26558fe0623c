"""The query behind `lifecycle explain`: one row for one user, each of a rule's compiled
conditions (the very clauses the candidates query ANDs) as a 1/0 column, with the events or
ledger row that made a condition fail. Pure: builds the query, does not run it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from engine.rules.language import EventItem, Rule
from engine.sql.candidates import (
    USER_COLUMNS,
    Compiled,
    account_traits,
    compile_rule,
    first_seen,
    item_window,
    ranked_members,
    suppression,
)
from engine.sql.moments import Moments
from engine.sql.schema import deliveries, events, users

# The v2 event conditions, by the prefix of their compiled names.
ITEM_KINDS = ("not_done", "done", "account_not_done", "account_done")


def explain_query(rule: Rule, user_id: str, now: datetime) -> Select[Any]:
    """One row for the user, whether or not they have an anchor: the anchor event is outer
    joined on the clauses that pick it, and every condition is a 1/0 column `check_<i>`.
    Where several anchors match (one per occurrence), the one closest to firing comes first:
    the most conditions holding, then the latest."""
    at = Moments(now)
    compiled = compile_rule(rule, at)
    source: FromClause = users
    if compiled.anchor is not None:
        on = and_(compiled.anchor.c.user_id == users.c.id, *compiled.anchor_match)
        source = users.outerjoin(compiled.anchor, on)
    holding = [case((clause, 1), else_=0) for _, clause in compiled.conditions]
    checks = [check.label(f"check_{index}") for index, check in enumerate(holding)]
    statement = (
        select(
            *USER_COLUMNS,
            *compiled.anchor_columns(),
            *compiled.key_columns(),
            account_traits().label("account_traits"),
            suppression().label("suppression_reason"),
            *checks,
            *_evidence(rule, compiled, at),
        )
        .select_from(source)
        .where(users.c.id == user_id)
    )
    score = sum(holding[1:], holding[0]) if holding else None
    if score is not None:
        statement = statement.order_by(score.desc())
    if compiled.anchor is not None:
        statement = statement.order_by(compiled.anchor_at.desc(), compiled.anchor.c.id.desc())
    return statement


def _evidence(rule: Rule, compiled: Compiled, at: Moments) -> list[ColumnElement[Any]]:
    """What a failed condition points at: the offending event, the ledger row."""
    anchor_at = compiled.anchor_at
    columns = [_ledger(rule, compiled, c) for c in ("created_at", "status", "reason", "user_id")]
    columns.append(_fired_before(rule, compiled).label("delivered_count"))
    names = [item.event for item in rule.when.not_done if item.plain]
    if names:
        columns.append(first_seen(names, anchor_at, at, "name").label("not_done_name"))
        columns.append(first_seen(names, anchor_at, at, "occurred_at").label("not_done_at"))
    for index, item in enumerate(rule.when.done):
        if item.plain:
            seen = first_seen([item.event], anchor_at, at, "occurred_at")
            columns.append(seen.label(f"done_{index}"))
    for kind in ITEM_KINDS:
        for index, item in enumerate(getattr(rule.when, kind)):
            if kind.startswith("account_") or not item.plain:
                columns += _item_evidence(item, f"{kind}_{index}", anchor_at, at, kind)
    if compiled.one_per_account:
        columns.append(_chosen(compiled).label("chosen_member"))
    if rule.when.anchor_event is not None:
        since = events.alias("since")
        columns.append(
            select(func.count())
            .where(since.c.user_id == users.c.id, since.c.name == rule.when.anchor_event)
            .scalar_subquery()
            .label("since_count")
        )
    return columns


def _item_evidence(
    item: EventItem, label: str, anchor_at: ColumnElement[Any], at: Moments, kind: str
) -> list[ColumnElement[Any]]:
    """How many of the item's events the window holds, and the first one (when, whose)."""
    shared = kind.startswith("account_")
    return [
        _seen(item, anchor_at, at, shared, lambda seen: func.count()).label(f"{label}_count"),
        _first(item, anchor_at, at, shared, "occurred_at").label(f"{label}_at"),
        _first(item, anchor_at, at, shared, "user_id").label(f"{label}_by"),
    ]


def _first(
    item: EventItem, anchor_at: ColumnElement[Any], at: Moments, shared: bool, column: str
) -> ColumnElement[Any]:
    def earliest(seen: FromClause) -> ColumnElement[Any]:
        return seen.c[column]

    return _seen(item, anchor_at, at, shared, earliest, ordered=True)


def _seen(
    item: EventItem,
    anchor_at: ColumnElement[Any],
    at: Moments,
    shared: bool,
    head: Any,
    *,
    ordered: bool = False,
) -> ColumnElement[Any]:
    """`head(seen)` over the item's events in its window: the user's own, or (`shared`) any
    member's of the user's account, exactly as the compiled condition reads them."""

    def over(member_filter: bool) -> ColumnElement[Any]:
        seen, member = events.alias(), users.alias("member")
        statement = select(head(seen))
        if member_filter:
            statement = statement.select_from(
                seen.join(member, member.c.id == seen.c.user_id)
            ).where(member.c.account_id == users.c.account_id)
        else:
            statement = statement.select_from(seen).where(seen.c.user_id == users.c.id)
        statement = statement.where(*item_window(item, seen, anchor_at, at))
        if ordered:
            statement = statement.order_by(seen.c.occurred_at, seen.c.id).limit(1)
        excluded = (seen, member) if member_filter else (seen,)
        return statement.correlate_except(*excluded).scalar_subquery()

    if not shared:
        return over(False)
    return case((users.c.account_id.is_(None), over(False)), else_=over(True))


def _chosen(compiled: Compiled) -> ColumnElement[Any]:
    """The member a `once_per: account` rule fires for in this user's account, or NULL."""
    ranked = ranked_members(compiled)
    return (
        select(ranked.c.member_id)
        .where(ranked.c.rank == 1, ranked.c.subject == compiled.subject)
        .scalar_subquery()
    )


def _ledger(rule: Rule, compiled: Compiled, column: str) -> ColumnElement[Any]:
    """The subject's latest ledger row for the rule (for `once_per: occurrence`, this
    occurrence's row; a repeating rule has several, the latest counts)."""
    statement = select(deliveries.c[column]).where(
        deliveries.c.rule_id == rule.id, deliveries.c.subject == compiled.subject
    )
    if rule.once_per == "occurrence":
        statement = statement.where(deliveries.c.occurrence == compiled.occurrence)
    return (
        statement.order_by(deliveries.c.id.desc())
        .limit(1)
        .scalar_subquery()
        .label(f"delivered_{column}")
    )


def _fired_before(rule: Rule, compiled: Compiled) -> ColumnElement[Any]:
    return (
        select(func.count())
        .select_from(deliveries)
        .where(deliveries.c.rule_id == rule.id, deliveries.c.subject == compiled.subject)
        .scalar_subquery()
    )
