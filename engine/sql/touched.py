"""Incremental evaluation: the users for whom a rule's verdict can have changed since its
last evaluation. Pure: builds statements, never runs them.

A rule fires at `now` for a user it did not fire for at `since` (its last evaluation) only
if something it reads changed in between. What it reads is the user's row, the account's row
and members, the user's (or members') events, its own ledger rows, and time. So the touched
users are:

- those with something ingested since (`events` and `changes` between the mark's id and seq
  and this tick's watermark): by ingestion order, never by event time, so a late event with
  an old timestamp is found; new events only of the names the rule reads;
- those whose anchor time entered the window `(since - after, now - after]`;
- those with events of the names it reads dated in `(since, now]`: ingested before, dated
  ahead (every event of a replay), they come into view as time passes;
- those with events leaving a `within` window, `[since - within, now - within]`: `not_done`
  and `count: {lt: n}` can turn true as they go;
- those whose firing's `repeat_after` ran out in `[since - repeat, now - repeat]`;
- for a rule that reads accounts, every member of an account any of them belongs to (or one
  that `changes` names): the account's creation, events, traits and chosen member depend on
  all of its members.

Anything else (the expiry bound, other rules' rows, suppressions) can only stop a firing or
change its status, which the first evaluation of the firing decides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Select, and_, bindparam, select, union
from sqlalchemy.sql.elements import ColumnElement

from engine.rules.language import EventItem, Rule
from engine.sql.candidates import window
from engine.sql.schema import changes, deliveries, events, users


@dataclass(frozen=True)
class Watermark:
    """How far ingestion had got: the newest event id and change seq, both 0 on an empty
    database."""

    event_id: int
    change_seq: int


def read_events(rule: Rule) -> tuple[str, ...]:
    """Every event name the rule reads: its anchor's and its items'."""
    when = rule.when
    items = (*when.done, *when.not_done, *when.account_done, *when.account_not_done)
    names = {item.event for item in items}
    if when.anchor_event is not None:
        names.add(when.anchor_event)
    return tuple(sorted(names))


def touched(rule: Rule) -> Select[Any]:
    """The ids of the users `rule` must be evaluated for, given the parameters
    `touched_params` computes for a tick; a superset is always correct, a subset never.

    Every time and mark is a named parameter, so that the statement is built once per rule
    definition and compiled once: an idle tick is then a few index probes per rule, not the
    construction of a statement."""
    parts = [*_ingested(rule), *_entered(rule), *_repeats(rule)]
    names = read_events(rule)
    if names:
        parts.append(_events_between(names))
    parts += [_left_within(index, item) for index, item in _windowed(rule)]
    found = union(*parts).subquery("found")
    if not rule.uses_account:
        users_found = select(found.c.user_id).where(found.c.user_id.is_not(None))
    else:
        users_found = _with_members(found)
    # `most` + 1 at most: beyond `most`, the caller evaluates in full and needs no list.
    return users_found.limit(bindparam("most", type_=BigInteger()))


def touched_params(
    rule: Rule, since: datetime, now: datetime, mark: Watermark, current: Watermark, most: int
) -> dict[str, Any]:
    """The values of `touched(rule)`'s parameters for a tick at `now` (ingestion read up to
    `current`) after one at `since` (up to `mark`), finding no more than `most` + 1 users."""
    earliest, latest = window(rule, now)
    params: dict[str, Any] = {
        "most": most + 1,
        "change_seq": mark.change_seq,
        "event_id": mark.event_id,
        "change_seq_now": current.change_seq,
        "event_id_now": current.event_id,
        "since": since,
        "now": now,
        # anchors up to `passed` were in the window at `since`
        "passed": since - rule.when.after,
        "earliest": earliest,
        "latest": latest,
    }
    for index, item in _windowed(rule):
        assert item.within is not None
        params[f"left_{index}_from"] = since - item.within
        params[f"left_{index}_to"] = now - item.within
    if rule.repeat_after is not None:
        params["repeat_from"] = since - rule.repeat_after
        params["repeat_to"] = now - rule.repeat_after
    return params


def _time(name: str) -> Any:
    return bindparam(name, type_=events.c.occurred_at.type)


def _seq(name: str) -> Any:
    return bindparam(name, type_=BigInteger())


def _since_mark(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """Ingested after the mark, up to this tick's watermark: what is ingested meanwhile is the
    next tick's. Both bounds also let a planner without statistics see a short id range: an
    open `id > mark` looked to PostgreSQL like a third of the table, and it scanned it all."""
    return and_(column > _seq(name), column <= _seq(f"{name}_now"))


def _ingested(rule: Rule) -> list[Select[Any]]:
    changed = select(changes.c.user_id.label("user_id")).where(
        _since_mark(changes.c.seq, "change_seq")
    )
    names = read_events(rule)
    if not names:
        return [changed]
    # `name || ''`: kept off the (name, occurred_at) index, which SQLite would otherwise
    # prefer to the id range, and scan every event of those names to find the few new ones.
    new = select(events.c.user_id).where(
        _since_mark(events.c.id, "event_id"), (events.c.name + "").in_(names)
    )
    return [changed, new]


def _entered(rule: Rule) -> list[Select[Any]]:
    """Users whose anchor time came into the window since the last evaluation."""

    def between(column: ColumnElement[Any]) -> ColumnElement[bool]:
        # Both ends of the window are inclusive: an anchor at exactly `earliest` is open.
        return and_(
            column > _time("passed"), column >= _time("earliest"), column <= _time("latest")
        )

    name = rule.when.anchor_event
    if name is None:
        # An account's creation is its first member's signup: the members then bring in the
        # rest of the account.
        return [select(users.c.id.label("user_id")).where(between(users.c.signed_up_at))]
    return [select(events.c.user_id).where(events.c.name == name, between(events.c.occurred_at))]


def _events_between(names: tuple[str, ...]) -> Select[Any]:
    # A plain IN: a few names, each a range on the (name, occurred_at) index.
    return select(events.c.user_id).where(
        events.c.name.in_(names),
        events.c.occurred_at > _time("since"),
        events.c.occurred_at <= _time("now"),
    )


def _windowed(rule: Rule) -> list[tuple[int, EventItem]]:
    when = rule.when
    items = (*when.done, *when.not_done, *when.account_done, *when.account_not_done)
    return [(index, item) for index, item in enumerate(items) if item.within is not None]


def _left_within(index: int, item: EventItem) -> Select[Any]:
    return select(events.c.user_id).where(
        events.c.name == item.event,
        events.c.occurred_at >= _time(f"left_{index}_from"),
        events.c.occurred_at <= _time(f"left_{index}_to"),
    )


def _repeats(rule: Rule) -> list[Select[Any]]:
    if rule.repeat_after is None:
        return []
    return [
        select(deliveries.c.user_id).where(
            deliveries.c.rule_id == rule.id,
            deliveries.c.created_at >= _time("repeat_from"),
            deliveries.c.created_at <= _time("repeat_to"),
        )
    ]


def _with_members(found: Any) -> Select[Any]:
    """The users found and every member of their accounts, and of the accounts `changes`
    names (an account's traits, or the one a member left)."""
    theirs = select(users.c.account_id).where(
        users.c.id.in_(select(found.c.user_id)), users.c.account_id.is_not(None)
    )
    named = select(changes.c.account_id).where(
        _since_mark(changes.c.seq, "change_seq"), changes.c.account_id.is_not(None)
    )
    # Two lookups on the account index, not one OR, which PostgreSQL answers with a scan.
    members = [
        select(users.c.id.label("user_id")).where(users.c.account_id.in_(accounts))
        for accounts in (theirs, named)
    ]
    everyone = union(select(found.c.user_id).where(found.c.user_id.is_not(None)), *members)
    return select(everyone.subquery("everyone").c.user_id)
