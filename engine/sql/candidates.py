"""Compile a rule into one SQLAlchemy Core statement: the users for whom it fires at `now`.

Set-based and windowed: the anchor (signup time, the user's first or last matching event, or
the account's first signup) must lie in `[now - after - expires, now - after]`, a range scan on
an index for signup and event anchors, so the cost follows the users whose time has come, not
all users. Account rules choose one member per account with a window function, in the same
statement. Pure: builds the statement, never runs it. `engine.rules.reference` defines what it
must find.

`compile_rule` keeps each condition named, so that `engine.explain` can select them one by one
for a user: an explanation reads the very clauses the evaluator ANDs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FromClause, Subquery

from engine.rules.conditions import Kind
from engine.rules.language import EventItem, Ops, Rule
from engine.rules.reference import KEY_MAX
from engine.sql.conditions import sql_condition
from engine.sql.dialect import NameIn
from engine.sql.json_values import JsonBool, JsonKey, JsonNumber, JsonPresent, JsonText
from engine.sql.moments import Moments, moments
from engine.sql.schema import accounts, deliveries, events, suppressions, users

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
    """A rule compiled for one `now`: which event (if any) anchors it, its conditions, and the
    ledger key (subject, occurrence) a firing takes."""

    anchor: FromClause | None  # the anchor events alias; None when anchored on a signup
    anchor_at: ColumnElement[Any]
    anchor_match: tuple[ColumnElement[bool], ...]  # picks the anchor event(s), or narrows early
    conditions: tuple[Condition, ...]
    subject: ColumnElement[Any]
    occurrence: ColumnElement[Any]
    one_per_account: bool = False

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

    def key_columns(self) -> list[ColumnElement[Any]]:
        return [self.subject.label("subject"), self.occurrence.label("occurrence")]


def window(rule: Rule, now: datetime) -> tuple[datetime, datetime]:
    """The anchor times for which the rule fires at `now`, both ends inclusive."""
    latest = now - rule.when.after
    return latest - rule.expires, latest


def compile_rule(
    rule: Rule, now: datetime | Moments, scope: Sequence[str] | None = None
) -> Compiled:
    """The rule's anchor and its named conditions at `now`, in the order people read them;
    only for the users in `scope`, when given (incremental evaluation's touched users: it
    holds whole accounts, so an account rule still ranks every member of each). Every time
    is a parameter of `now` (`engine.sql.moments`), the scope the parameter `scope`: the
    statement runs again at another `now`, for other users, with other parameters."""
    at = moments(now)
    latest = at.at(-rule.when.after)
    earliest = at.at(-rule.when.after - rule.expires)
    anchor: FromClause | None = None
    match: tuple[ColumnElement[bool], ...] = ()
    if rule.when.anchored_on_signup:
        anchor_at: ColumnElement[Any] = users.c.signed_up_at
        present = anchor_at.is_not(None)
    elif rule.when.anchored_on_account:
        anchor_at = account_created()
        present = anchor_at.is_not(None)
        match = (_account_created_between(earliest, latest),)
    else:
        anchor = events.alias("anchor")
        anchor_at = anchor.c.occurred_at
        present = anchor.c.id.is_not(None)
        match = _anchor_match(rule, anchor, at)
    if scope is not None:
        # On the anchor's user id for an event anchor: its (user_id, name, occurred_at) index
        # then drives from the few users in scope.
        who = users.c.id if anchor is None else anchor.c.user_id
        match = (ids_in(who, scope), *match)
    subject = subject_of(rule)
    occurrence = _occurrence(rule, anchor, subject)
    conditions: list[Condition] = [
        *_audience(rule),
        ("anchor", present),
        ("after", anchor_at <= latest),
        ("expires", anchor_at >= earliest),
        *_done(rule, anchor_at, at),
        ("not_delivered", ~_delivered(rule, subject, occurrence, at)),
    ]
    return Compiled(
        anchor,
        anchor_at,
        match,
        tuple(conditions),
        subject,
        occurrence,
        one_per_account=rule.once_per == "account",
    )


# Up to this many ids, a scope is a plain IN list: SQLite then knows how few they are and
# looks them up by key, where a one-parameter list (`NameIn`, for longer ones) looks to it
# like a table of unknown size, and it scans the rule's window instead.
LISTED_IDS = 1000
# The parameter that holds a scope's ids.
SCOPE = "scope"


def ids_in(column: ColumnElement[Any], ids: Sequence[str]) -> ColumnElement[bool]:
    """`column IN scope`, the ids bound as the parameter `scope`."""
    if len(ids) <= LISTED_IDS:
        return column.in_(bindparam(SCOPE, list(ids), expanding=True))
    return NameIn(column, ids, negated=False, key=SCOPE)


def scope_kind(scope: Sequence[str] | None) -> str:
    """Which statement a scope takes: none, a plain IN list, or one bound list."""
    return "all" if scope is None else "listed" if len(scope) <= LISTED_IDS else "bound"


def subject_of(rule: Rule) -> ColumnElement[Any]:
    """Who a firing counts against: the user, or (`once_per: account`) the account."""
    if rule.once_per != "account":
        return users.c.id
    return case(
        (users.c.account_id.is_(None), literal("user:", String()) + users.c.id),
        else_=literal("account:", String()) + users.c.account_id,
    )


def account_created() -> ColumnElement[Any]:
    """The account's first member's signup (the user's own, without an account)."""
    member = users.alias("member")
    first = (
        select(func.min(member.c.signed_up_at))
        .where(member.c.account_id == users.c.account_id)
        .correlate_except(member)  # the outer user, even from inside an EXISTS
        .scalar_subquery()
    )
    return case((users.c.account_id.is_(None), users.c.signed_up_at), else_=first)


def _account_created_between(
    earliest: ColumnElement[Any], latest: ColumnElement[Any]
) -> ColumnElement[bool]:
    """Implied by the window on `account_created()`, but sargable: the account's first
    member signed up in the window, so some member did. Without it, the database computes
    every user's account creation (a subquery per user) to find the few in the window; with
    it, the signup index finds the accounts first."""
    member = users.alias("window_member")
    in_window = member.c.signed_up_at.between(earliest, latest)
    return or_(
        and_(users.c.account_id.is_(None), users.c.signed_up_at.between(earliest, latest)),
        users.c.account_id.in_(
            select(member.c.account_id)
            .where(in_window, member.c.account_id.is_not(None))
            .correlate_except(member)
        ),
    )


def _anchor_match(rule: Rule, anchor: FromClause, at: Moments) -> tuple[ColumnElement[bool], ...]:
    """The clauses that pick the anchor events: the first (or last) matching event, per
    occurrence key where one names occurrences, or each one for `once_per: occurrence`."""
    when = rule.when
    clauses: list[ColumnElement[bool]] = [
        anchor.c.name == when.anchor_event,
        properties_match(anchor.c.properties, when.anchor_where),
    ]
    key = when.occurrence_key
    if key is not None:
        value = JsonKey(anchor.c.properties, key)
        clauses += [value.is_not(None), func.length(value) <= KEY_MAX]
    each_event = rule.once_per == "occurrence" and key is None and when.occurrence == "first"
    if not each_event:
        clauses.append(~_other_match(rule, anchor, at))
    return tuple(clauses)


def _other_match(rule: Rule, anchor: FromClause, at: Moments) -> ColumnElement[bool]:
    """Another matching event that comes before this one (`first`) or after it, up to `now`
    (`last`): then this one is not the anchor. With an occurrence key, only the events of
    the same occurrence compete."""
    when = rule.when
    other = events.alias("other")
    if when.occurrence == "first":
        beyond = or_(
            other.c.occurred_at < anchor.c.occurred_at,
            and_(other.c.occurred_at == anchor.c.occurred_at, other.c.id < anchor.c.id),
        )
    else:
        beyond = and_(
            other.c.occurred_at <= at.at(),
            or_(
                other.c.occurred_at > anchor.c.occurred_at,
                and_(other.c.occurred_at == anchor.c.occurred_at, other.c.id > anchor.c.id),
            ),
        )
    same: list[ColumnElement[bool]] = []
    if when.occurrence_key is not None:
        key = when.occurrence_key
        same = [JsonKey(other.c.properties, key) == JsonKey(anchor.c.properties, key)]
    return exists().where(
        other.c.user_id == anchor.c.user_id,
        other.c.name == when.anchor_event,
        beyond,
        properties_match(other.c.properties, when.anchor_where),
        *same,
    )


def _occurrence(
    rule: Rule, anchor: FromClause | None, subject: ColumnElement[Any]
) -> ColumnElement[Any]:
    """Which of the subject's firings this one is (the ledger's `occurrence`)."""
    if rule.once_per == "occurrence":
        assert anchor is not None  # the language requires an event anchor
        if rule.when.occurrence_key is None:
            return literal("event:", String()) + cast(anchor.c.id, String())
        return literal("key:", String()) + JsonKey(anchor.c.properties, rule.when.occurrence_key)
    if rule.repeat_after is None:
        return literal("", String())
    fired = (
        select(func.count())
        .select_from(deliveries)
        .where(deliveries.c.rule_id == rule.id, deliveries.c.subject == subject)
        .correlate_except(deliveries)
        .scalar_subquery()
    )
    return case(
        (fired == 0, literal("", String())),
        else_=literal("#", String()) + cast(fired + literal(1, Integer()), String()),
    )


def candidates(
    rule: Rule,
    now: datetime | Moments,
    *,
    user_ids: Sequence[str] | None = None,
    ordered: bool = False,
    where: Sequence[ColumnElement[bool]] = (),
    scope: Sequence[str] | None = None,
) -> Select[Any]:
    """Users (with anchor and suppression) for whom `rule` fires at `now` and has not fired;
    `where` narrows them further (the tick splits them by what the daily cap can do), and
    `scope` to the users incremental evaluation looks at (`compile_rule`)."""
    compiled = compile_rule(rule, now, scope)
    statement = firings(
        compiled,
        [
            *USER_COLUMNS,
            *compiled.anchor_columns(),
            *compiled.key_columns(),
            suppression().label("suppression_reason"),
        ],
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
    source = _source(compiled)
    matched = (*compiled.anchor_match, *(clause for _, clause in compiled.conditions))
    statement = select(*columns).select_from(source).where(*matched, *where)
    if compiled.one_per_account:
        statement = statement.where(users.c.id.in_(_chosen_members(compiled)))
    return statement


def _source(compiled: Compiled) -> FromClause:
    if compiled.anchor is None:
        return users
    return compiled.anchor.join(users, users.c.id == compiled.anchor.c.user_id)


def _chosen_members(compiled: Compiled) -> Select[Any]:
    """Per account, the member a `once_per: account` rule fires for."""
    ranked = ranked_members(compiled)
    return select(ranked.c.member_id).where(ranked.c.rank == 1)


def ranked_members(compiled: Compiled) -> Subquery:
    """The members for whom the compiled rule matches, ranked per subject (account): the
    earliest-signed-up first, ties by id (`reference.signup_order`); rank 1 is chosen."""
    rank = (
        func.row_number()
        .over(
            partition_by=compiled.subject,
            order_by=(users.c.signed_up_at.is_(None), users.c.signed_up_at, users.c.id),
        )
        .label("rank")
    )
    matched = (*compiled.anchor_match, *(clause for _, clause in compiled.conditions))
    return (
        select(users.c.id.label("member_id"), compiled.subject.label("subject"), rank)
        .select_from(_source(compiled))
        .where(*matched)
        .correlate(None)
        .subquery("ranked")
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
    for key, ops in audience.account.items():
        clauses.append((f"audience.account.{key}", properties_match(account_traits(), {key: ops})))
    return clauses


def account_traits() -> ColumnElement[Any]:
    """The user's account's traits, or NULL (no account, no group call): every typed read of
    NULL is NULL, so conditions see no traits at all, as the reference does."""
    return (
        select(accounts.c.traits)
        .where(accounts.c.id == users.c.account_id)
        .correlate_except(accounts)
        .scalar_subquery()
    )


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


def _done(rule: Rule, anchor_at: ColumnElement[Any], at: Moments) -> list[Condition]:
    """The event conditions, named for `explain`: v1's bare names keep their v1 names."""
    when = rule.when
    clauses: list[Condition] = []
    plain = [item.event for item in when.not_done if item.plain]
    if plain:
        clauses.append(("not_done", ~_seen(plain, anchor_at, at)))
    for index, item in enumerate(when.not_done):
        if not item.plain:
            clauses.append((f"not_done[{index}]", ~_happened(item, anchor_at, at, False)))
    for index, item in enumerate(when.done):
        name = f"done.{item.event}" if item.plain else f"done[{index}]"
        clauses.append((name, _happened(item, anchor_at, at, False)))
    for index, item in enumerate(when.account_not_done):
        clauses.append((f"account_not_done[{index}]", ~_happened(item, anchor_at, at, True)))
    for index, item in enumerate(when.account_done):
        clauses.append((f"account_done[{index}]", _happened(item, anchor_at, at, True)))
    return clauses


def _happened(
    item: EventItem, anchor_at: ColumnElement[Any], at: Moments, account: bool
) -> ColumnElement[bool]:
    """Whether the item's events happened (as often as its count asks): the user's own, or
    (`account`) any member's of the user's account."""
    if item.count is None:
        own: ColumnElement[Any] = exists().where(*item_events(item, events.alias(), anchor_at, at))
    else:
        own = _count(item, anchor_at, at)
    value = own
    if account:
        shared = _member_events(item, anchor_at, at)
        value = case((users.c.account_id.is_(None), own), else_=shared)
    if item.count is None:
        return value
    return and_(true(), *(compare(value, bound) for bound, compare in item.count.bounds()))


def _count(item: EventItem, anchor_at: ColumnElement[Any], at: Moments) -> ColumnElement[Any]:
    seen = events.alias()
    return (
        select(func.count())
        .select_from(seen)
        .where(*item_events(item, seen, anchor_at, at))
        .correlate_except(seen)  # the user and the anchor: even nested in an EXISTS
        .scalar_subquery()
    )


def _member_events(
    item: EventItem, anchor_at: ColumnElement[Any], at: Moments
) -> ColumnElement[Any]:
    """Whether (or, with a count, how often) the account's members did the item: member by
    member, each through the (user_id, name, occurred_at) index. A join of events to members
    let SQLite drive from the events of that name in the window, every user's: 2.8 s a tick
    at 20k users, for one rule."""
    seen, member = events.alias(), users.alias("member")
    own = (seen.c.user_id == member.c.id, *item_window(item, seen, anchor_at, at))
    members = select(member.c.id).where(member.c.account_id == users.c.account_id)
    if item.count is None:
        did = exists().where(*own).correlate_except(seen)
        return exists(members.where(did).correlate_except(member))
    per_member = select(func.count()).select_from(seen).where(*own).correlate_except(seen)
    total = func.coalesce(func.sum(per_member.scalar_subquery()), 0)
    return (
        select(total)
        .select_from(member)
        .where(member.c.account_id == users.c.account_id)
        .correlate_except(member)
        .scalar_subquery()
    )


def item_events(
    item: EventItem, seen: FromClause, anchor_at: ColumnElement[Any], at: Moments
) -> list[ColumnElement[bool]]:
    """The user's events that a done/not_done item sees."""
    return [seen.c.user_id == users.c.id, *item_window(item, seen, anchor_at, at)]


def item_window(
    item: EventItem, seen: FromClause, anchor_at: ColumnElement[Any], at: Moments
) -> list[ColumnElement[bool]]:
    start = anchor_at if item.within is None else at.at(-item.within)
    clauses = [
        seen.c.name == item.event,
        seen.c.occurred_at >= start,
        seen.c.occurred_at <= at.at(),
    ]
    if item.where:
        clauses.append(properties_match(seen.c.properties, item.where))
    return clauses


def _seen_in(
    seen: FromClause, names: Sequence[str], anchor_at: ColumnElement[Any], at: Moments
) -> list[ColumnElement[bool]]:
    """The user's events named `names` in [anchor, now]: what v1's done / not_done look at."""
    return [
        seen.c.user_id == users.c.id,
        seen.c.name.in_(list(names)),
        seen.c.occurred_at >= anchor_at,
        seen.c.occurred_at <= at.at(),
    ]


def _seen(names: Sequence[str], anchor_at: ColumnElement[Any], at: Moments) -> ColumnElement[bool]:
    seen = events.alias()
    return exists().where(*_seen_in(seen, names, anchor_at, at))


def first_seen(
    names: Sequence[str], anchor_at: ColumnElement[Any], at: Moments, column: str
) -> ColumnElement[Any]:
    """`column` (`name` or `occurred_at`) of the earliest event `_seen` would find: explain
    names the event that made a condition fail, from the same window."""
    seen = events.alias()
    return (
        select(seen.c[column])
        .where(*_seen_in(seen, names, anchor_at, at))
        .order_by(seen.c.occurred_at, seen.c.id)
        .limit(1)
        .scalar_subquery()
    )


def _delivered(
    rule: Rule, subject: ColumnElement[Any], occurrence: ColumnElement[Any], at: Moments
) -> ColumnElement[bool]:
    """The subject's firing is in the ledger already: this occurrence, or (`repeat_after`)
    any firing within the last `repeat_after`."""
    mine = (deliveries.c.rule_id == rule.id, deliveries.c.subject == subject)
    if rule.repeat_after is None:
        return exists().where(*mine, deliveries.c.occurrence == occurrence)
    return exists().where(*mine, deliveries.c.created_at > at.at(-rule.repeat_after))


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
