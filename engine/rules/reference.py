"""The reference evaluator: one rule, the population's state, one `now`, in plain Python.

It is the oracle for the SQL evaluator (tests check they agree on random data) and is written
for clarity, not speed: it is what the rule language means. The README's rule-language section
says the same in words."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.model import Delivered, Event, User, UserState, World
from engine.rules.conditions import py_condition
from engine.rules.language import EventItem, Ops, Rule

# An occurrence key longer than this is no occurrence: the ledger stores it.
KEY_MAX = 200


@dataclass(frozen=True)
class Firing:
    user_id: str
    anchor_at: datetime
    anchor_event_id: int | None
    suppressed: bool
    subject: str = ""
    occurrence: str = ""


def evaluate(rule: Rule, state: UserState, now: datetime) -> Firing | None:
    """The firing of `rule` for this one user at `now` (v1 callers: the user is alone in
    their account and `delivered_rules` is their ledger), or None."""
    ledger = tuple(state.delivered) or tuple(
        Delivered(rule_id, state.user.id, state.user.id, "", now)
        for rule_id in state.delivered_rules
    )
    found = firings(rule, World((state,), {}, ledger), now)
    return found[0] if found else None


def firings(rule: Rule, world: World, now: datetime) -> list[Firing]:
    """Every firing of `rule` at `now` over the whole population."""
    members = _members(world.states)
    found = [
        firing
        for state in world.states
        for firing in _user_firings(rule, state, members, world, now)
    ]
    if rule.once_per != "account":
        return found
    # One per account: the earliest-signed-up matching member, ties by id.
    by_state = {state.user.id: state.user for state in world.states}
    chosen: dict[str, Firing] = {}
    for firing in sorted(found, key=lambda f: signup_order(by_state[f.user_id])):
        chosen.setdefault(firing.subject, firing)
    return list(chosen.values())


def signup_order(user: User) -> tuple[bool, datetime | None, str]:
    return (user.signed_up_at is None, user.signed_up_at, user.id)


def account_of(user: User) -> str:
    """The account a user counts in; a user without one is their own account."""
    return f"account:{user.account_id}" if user.account_id is not None else f"user:{user.id}"


def _members(states: Iterable[UserState]) -> dict[str, list[UserState]]:
    out: dict[str, list[UserState]] = {}
    for state in states:
        out.setdefault(account_of(state.user), []).append(state)
    return out


def _user_firings(
    rule: Rule,
    state: UserState,
    members: dict[str, list[UserState]],
    world: World,
    now: datetime,
) -> list[Firing]:
    account = members[account_of(state.user)]
    if not in_audience(rule, state, world.accounts):
        return []
    subject = account_of(state.user) if rule.once_per == "account" else state.user.id
    fired = [d for d in world.ledger if d.rule_id == rule.id and d.subject == subject]
    found = []
    for anchor_at, anchor_event, occurrence in anchors(rule, state, account, now):
        fire_at = anchor_at + rule.when.after
        if not fire_at <= now <= fire_at + rule.expires:
            continue
        if not conditions_hold(rule, state, account, anchor_at, now):
            continue
        taken = _next_occurrence(rule, fired, occurrence, now)
        if taken is None:
            continue
        event_id = anchor_event.id if anchor_event else None
        found.append(Firing(state.user.id, anchor_at, event_id, state.suppressed, subject, taken))
    return found


def _next_occurrence(
    rule: Rule, fired: Sequence[Delivered], occurrence: str, now: datetime
) -> str | None:
    """The ledger occurrence this firing would take, or None when it has fired already."""
    if rule.repeat_after is None:
        return None if any(d.occurrence == occurrence for d in fired) else occurrence
    if any(d.created_at > now - rule.repeat_after for d in fired):
        return None
    return "" if not fired else f"#{len(fired) + 1}"


def in_audience(rule: Rule, state: UserState, accounts: dict[str, dict[str, Any]]) -> bool:
    audience, user = rule.audience, state.user
    if audience.persona is not None and not py_condition(audience.persona, user.persona):
        return False
    if audience.signup_source is not None and not py_condition(
        audience.signup_source, user.signup_source
    ):
        return False
    if not properties_match(user.traits, audience.traits):
        return False
    traits = accounts.get(user.account_id, {}) if user.account_id is not None else {}
    return properties_match(traits, audience.account)


def properties_match(document: dict[str, Any], conditions: dict[str, Ops]) -> bool:
    return all(py_condition(ops, document.get(key)) for key, ops in conditions.items())


def anchors(
    rule: Rule, state: UserState, account: Sequence[UserState], now: datetime
) -> list[tuple[datetime, Event | None, str]]:
    """The anchors (time, event, occurrence) the rule may fire from for this user."""
    when = rule.when
    if when.anchored_on_signup:
        at = state.user.signed_up_at
        return [] if at is None else [(at, None, "")]
    if when.anchored_on_account:
        times = [m.user.signed_up_at for m in account if m.user.signed_up_at is not None]
        return [(min(times), None, "")] if times else []
    matching = [
        e
        for e in state.events
        if e.name == when.anchor_event and properties_match(e.properties, when.anchor_where)
    ]
    if when.occurrence == "last":
        matching = [e for e in matching if e.occurred_at <= now]
    key = when.occurrence_key
    groups: dict[str, list[Event]] = {}
    for event in matching:
        if key is None:
            group = "" if rule.once_per != "occurrence" else f"event:{event.id}"
        else:
            value = occurrence_value(event.properties.get(key))
            if value is None:
                continue
            group = f"key:{value}"
        groups.setdefault(group, []).append(event)
    order = {"first": min, "last": max}[when.occurrence]
    out: list[tuple[datetime, Event | None, str]] = []
    for group, events in groups.items():
        chosen = order(events, key=lambda e: (e.occurred_at, e.id))
        out.append((chosen.occurred_at, chosen, "" if rule.once_per != "occurrence" else group))
    if rule.once_per == "occurrence" and key is None and when.occurrence == "last":
        out = [max(out, key=lambda a: (a[0], a[1].id if a[1] else 0))] if out else []
    return out


def occurrence_value(value: object) -> str | None:
    """A property value that names an occurrence: a string or an integer, as text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int):
        text = str(value)
    else:
        return None
    return text if len(text) <= KEY_MAX else None


def conditions_hold(
    rule: Rule,
    state: UserState,
    account: Sequence[UserState],
    anchor_at: datetime,
    now: datetime,
) -> bool:
    when = rule.when
    own = state.events
    shared = [e for member in account for e in member.events]
    return (
        not any(count(item, own, anchor_at, now) for item in when.not_done)
        and all(done(item, own, anchor_at, now) for item in when.done)
        and not any(count(item, shared, anchor_at, now) for item in when.account_not_done)
        and all(done(item, shared, anchor_at, now) for item in when.account_done)
    )


def done(item: EventItem, events: Iterable[Event], anchor_at: datetime, now: datetime) -> bool:
    n = count(item, events, anchor_at, now)
    return n >= 1 if item.count is None else item.count.holds(n)


def count(item: EventItem, events: Iterable[Event], anchor_at: datetime, now: datetime) -> int:
    """How many of `events` the item sees: its name and `where`, in its window."""
    start = anchor_at if item.within is None else now - item.within
    return sum(
        1
        for e in events
        if e.name == item.event
        and start <= e.occurred_at <= now
        and properties_match(e.properties, item.where)
    )
