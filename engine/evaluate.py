"""Compile a rule into one SQLAlchemy Core statement: the users for whom it fires at `now`.

Set-based and windowed: the anchor (signup time, or the user's first matching event) must lie
in `[now - after - expires, now - after]`, a range scan on an index, so the cost follows the
users whose time has come, not all users. Pure: builds the statement, never runs it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, null, or_, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from engine.conditions import Kind, sql_condition
from engine.rules import Ops, Rule
from engine.schema import deliveries, events, suppressions, users
from engine.sqljson import JsonBool, JsonNumber, JsonPresent, JsonText

USER_COLUMNS = (
    users.c.id,
    users.c.email,
    users.c.persona,
    users.c.signup_source,
    users.c.signed_up_at,
    users.c.timezone,
    users.c.account_id,
    users.c.invited_by,
    users.c.traits,
)


def window(rule: Rule, now: datetime) -> tuple[datetime, datetime]:
    """The anchor times for which the rule fires at `now`, both ends inclusive."""
    latest = now - rule.when.after
    return latest - rule.expires, latest


def candidates(
    rule: Rule,
    now: datetime,
    *,
    user_ids: Sequence[str] | None = None,
    ordered: bool = False,
) -> Select[Any]:
    """Users (with anchor and suppression) for whom `rule` fires at `now` and has not fired."""
    earliest, latest = window(rule, now)
    if rule.when.anchored_on_signup:
        anchor_at: ColumnElement[Any] = users.c.signed_up_at
        columns = [
            anchor_at.label("anchor_at"),
            null().label("anchor_event_id"),
            null().label("anchor_properties"),
        ]
        source: FromClause = users
        anchor_filter = and_(anchor_at >= earliest, anchor_at <= latest)
    else:
        anchor = events.alias("anchor")
        anchor_at = anchor.c.occurred_at
        columns = [
            anchor_at.label("anchor_at"),
            anchor.c.id.label("anchor_event_id"),
            anchor.c.properties.label("anchor_properties"),
        ]
        source = anchor.join(users, users.c.id == anchor.c.user_id)
        anchor_filter = and_(
            anchor.c.name == rule.when.since,
            anchor_at >= earliest,
            anchor_at <= latest,
            _properties_match(anchor.c.properties, rule.when.where),
            ~_earlier_match(rule, anchor),
        )
    statement = (
        select(*USER_COLUMNS, *columns, _suppression().label("suppression_reason"))
        .select_from(source)
        .where(
            anchor_filter,
            _audience(rule),
            *_done(rule, anchor_at, now),
            ~_delivered(rule),
        )
    )
    if user_ids is not None:
        statement = statement.where(users.c.id.in_(list(user_ids)))
    if ordered:
        statement = statement.order_by(anchor_at, users.c.id)
    return statement


def _audience(rule: Rule) -> ColumnElement[bool]:
    audience = rule.audience
    clauses = []
    for column, ops in (
        (users.c.persona, audience.persona),
        (users.c.signup_source, audience.signup_source),
    ):
        if ops is not None:
            clauses.append(_column_condition(column, ops))
    clauses.append(_properties_match(users.c.traits, audience.traits))
    return and_(true(), *clauses)


def _column_condition(column: ColumnElement[Any], ops: Ops) -> ColumnElement[bool]:
    def read(kind: Kind) -> ColumnElement[Any] | None:
        return column if kind == "text" else None

    return sql_condition(ops, read, column.is_not(None))


def _properties_match(
    document: ColumnElement[Any], conditions: dict[str, Ops]
) -> ColumnElement[bool]:
    clauses = []
    for key, ops in conditions.items():
        readers = {
            "text": JsonText(document, key),
            "number": JsonNumber(document, key),
            "bool": JsonBool(document, key),
        }
        clauses.append(sql_condition(ops, readers.get, JsonPresent(document, key)))
    return and_(true(), *clauses)


def _earlier_match(rule: Rule, anchor: FromClause) -> ColumnElement[bool]:
    """Another matching event before this one: then this one is not the user's first."""
    prior = events.alias("prior")
    return exists().where(
        prior.c.user_id == anchor.c.user_id,
        prior.c.name == rule.when.since,
        or_(
            prior.c.occurred_at < anchor.c.occurred_at,
            and_(prior.c.occurred_at == anchor.c.occurred_at, prior.c.id < anchor.c.id),
        ),
        _properties_match(prior.c.properties, rule.when.where),
    )


def _done(rule: Rule, anchor_at: ColumnElement[Any], now: datetime) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if rule.when.not_done:
        clauses.append(~_seen(rule.when.not_done, anchor_at, now))
    clauses.extend(_seen([name], anchor_at, now) for name in rule.when.done)
    return clauses


def _seen(
    names: Sequence[str], anchor_at: ColumnElement[Any], now: datetime
) -> ColumnElement[bool]:
    seen = events.alias()
    return exists().where(
        seen.c.user_id == users.c.id,
        seen.c.name.in_(list(names)),
        seen.c.occurred_at >= anchor_at,
        seen.c.occurred_at <= now,
    )


def _delivered(rule: Rule) -> ColumnElement[bool]:
    return exists().where(deliveries.c.rule_id == rule.id, deliveries.c.user_id == users.c.id)


def _suppression() -> ColumnElement[Any]:
    """Why the user gets no email (`unsubscribed`, `bounced`), or NULL. Two probes, each on
    its own index, rather than one OR that would defeat both."""

    def first(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return (
            select(suppressions.c.reason)
            .where(condition)
            .order_by(suppressions.c.id)
            .limit(1)
            .scalar_subquery()
        )

    return func.coalesce(
        first(suppressions.c.user_id == users.c.id),
        first(suppressions.c.email == func.lower(users.c.email)),
    )
