"""Compile a rule into one SQLAlchemy Core statement: the users for whom it fires at `now`.

Set-based and windowed: the anchor (signup time, or the user's first matching event) must lie
in `[now - after - expires, now - after]`, a range scan on an index, so the cost follows the
users whose time has come, not all users. Pure: builds the statement, never runs it.

`compile_rule` keeps each condition named, so that `engine.explain` can select them one by one
for a user: an explanation reads the very clauses the evaluator ANDs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, null, or_, select, true
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause

from engine.rules.conditions import Kind
from engine.rules.language import Ops, Rule
from engine.sql.conditions import sql_condition
from engine.sql.json_values import JsonBool, JsonNumber, JsonPresent, JsonText
from engine.sql.schema import deliveries, events, suppressions, users

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


# A named SQL condition: every one must hold for the rule to fire. `candidates()` ANDs them;
# `engine.explain` selects each as a column, so both read the very same clauses.
Condition = tuple[str, ColumnElement[bool]]


@dataclass(frozen=True)
class Compiled:
    """A rule compiled for one `now`: which event (if any) anchors it, and its conditions."""

    anchor: FromClause | None  # the anchor events alias; None when anchored on signup
    anchor_at: ColumnElement[Any]
    anchor_match: tuple[ColumnElement[bool], ...]  # picks the user's anchor event
    conditions: tuple[Condition, ...]

    def anchor_columns(self) -> list[ColumnElement[Any]]:
        if self.anchor is None:
            return [
                self.anchor_at.label("anchor_at"),
                null().label("anchor_event_id"),
                null().label("anchor_properties"),
            ]
        return [
            self.anchor_at.label("anchor_at"),
            self.anchor.c.id.label("anchor_event_id"),
            self.anchor.c.properties.label("anchor_properties"),
        ]


def window(rule: Rule, now: datetime) -> tuple[datetime, datetime]:
    """The anchor times for which the rule fires at `now`, both ends inclusive."""
    latest = now - rule.when.after
    return latest - rule.expires, latest


def compile_rule(rule: Rule, now: datetime) -> Compiled:
    """The rule's anchor and its named conditions at `now`, in the order people read them."""
    earliest, latest = window(rule, now)
    anchor: FromClause | None = None
    if rule.when.anchored_on_signup:
        anchor_at: ColumnElement[Any] = users.c.signed_up_at
        present = anchor_at.is_not(None)
        match: tuple[ColumnElement[bool], ...] = ()
    else:
        anchor = events.alias("anchor")
        anchor_at = anchor.c.occurred_at
        present = anchor.c.id.is_not(None)
        match = (
            anchor.c.name == rule.when.since,
            properties_match(anchor.c.properties, rule.when.where),
            ~_earlier_match(rule, anchor),
        )
    conditions: list[Condition] = [
        *_audience(rule),
        ("anchor", present),
        ("after", anchor_at <= latest),
        ("expires", anchor_at >= earliest),
        *_done(rule, anchor_at, now),
        ("not_delivered", ~_delivered(rule)),
    ]
    return Compiled(anchor, anchor_at, match, tuple(conditions))


def candidates(
    rule: Rule,
    now: datetime,
    *,
    user_ids: Sequence[str] | None = None,
    ordered: bool = False,
    where: Sequence[ColumnElement[bool]] = (),
) -> Select[Any]:
    """Users (with anchor and suppression) for whom `rule` fires at `now` and has not fired;
    `where` narrows them further (the tick splits them by what the daily cap can do)."""
    compiled = compile_rule(rule, now)
    statement = firings(
        compiled,
        [*USER_COLUMNS, *compiled.anchor_columns(), suppression().label("suppression_reason")],
        where,
    )
    if user_ids is not None:
        statement = statement.where(users.c.id.in_(list(user_ids)))
    if ordered:
        statement = statement.order_by(compiled.anchor_at, users.c.id)
    return statement


def firings(
    compiled: Compiled,
    columns: Sequence[ColumnElement[Any]],
    where: Sequence[ColumnElement[bool]] = (),
) -> Select[Any]:
    """`columns` of the users (and anchor events) for whom the compiled rule fires."""
    source: FromClause = users
    if compiled.anchor is not None:
        source = compiled.anchor.join(users, users.c.id == compiled.anchor.c.user_id)
    return (
        select(*columns)
        .select_from(source)
        .where(*compiled.anchor_match, *(clause for _, clause in compiled.conditions), *where)
    )


def _audience(rule: Rule) -> list[Condition]:
    audience = rule.audience
    clauses: list[Condition] = []
    for name, column, ops in (
        ("persona", users.c.persona, audience.persona),
        ("signup_source", users.c.signup_source, audience.signup_source),
    ):
        if ops is not None:
            clauses.append((f"audience.{name}", _column_condition(column, ops)))
    for key, ops in audience.traits.items():
        clauses.append((f"audience.traits.{key}", properties_match(users.c.traits, {key: ops})))
    return clauses


def _column_condition(column: ColumnElement[Any], ops: Ops) -> ColumnElement[bool]:
    def read(kind: Kind) -> ColumnElement[Any] | None:
        return column if kind == "text" else None

    return sql_condition(ops, read, column.is_not(None))


def properties_match(
    document: ColumnElement[Any], conditions: dict[str, Ops]
) -> ColumnElement[bool]:
    """A JSON document (traits, event properties) against a rule's conditions, with the
    evaluator's type-strict semantics (`engine.conditions`); the reports' goal filters too."""
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
        properties_match(prior.c.properties, rule.when.where),
    )


def _done(rule: Rule, anchor_at: ColumnElement[Any], now: datetime) -> list[Condition]:
    clauses: list[Condition] = []
    if rule.when.not_done:
        clauses.append(("not_done", ~_seen(rule.when.not_done, anchor_at, now)))
    clauses.extend((f"done.{name}", _seen([name], anchor_at, now)) for name in rule.when.done)
    return clauses


def _seen_in(
    seen: FromClause, names: Sequence[str], anchor_at: ColumnElement[Any], now: datetime
) -> list[ColumnElement[bool]]:
    """The user's events named `names` in [anchor, now]: what done / not_done look at."""
    return [
        seen.c.user_id == users.c.id,
        seen.c.name.in_(list(names)),
        seen.c.occurred_at >= anchor_at,
        seen.c.occurred_at <= now,
    ]


def _seen(
    names: Sequence[str], anchor_at: ColumnElement[Any], now: datetime
) -> ColumnElement[bool]:
    seen = events.alias()
    return exists().where(*_seen_in(seen, names, anchor_at, now))


def first_seen(
    names: Sequence[str], anchor_at: ColumnElement[Any], now: datetime, column: str
) -> ColumnElement[Any]:
    """`column` (`name` or `occurred_at`) of the earliest event `_seen` would find: explain
    names the event that made a condition fail, from the same window."""
    seen = events.alias()
    return (
        select(seen.c[column])
        .where(*_seen_in(seen, names, anchor_at, now))
        .order_by(seen.c.occurred_at, seen.c.id)
        .limit(1)
        .scalar_subquery()
    )


def _delivered(rule: Rule) -> ColumnElement[bool]:
    return exists().where(deliveries.c.rule_id == rule.id, deliveries.c.user_id == users.c.id)


def suppression() -> ColumnElement[Any]:
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
