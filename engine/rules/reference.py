"""The reference evaluator: one rule, one user's state, one `now`, in plain Python.

It is the oracle for the SQL evaluator (tests check they agree on random data) and is written
for clarity, not speed: it is what the rule language means."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.model import Event, UserState
from engine.rules.conditions import py_condition
from engine.rules.language import Ops, Rule


@dataclass(frozen=True)
class Firing:
    user_id: str
    anchor_at: datetime
    anchor_event_id: int | None
    suppressed: bool


def evaluate(rule: Rule, state: UserState, now: datetime) -> Firing | None:
    """The firing of `rule` for this user at `now`, or None."""
    if rule.id in state.delivered_rules or not in_audience(rule, state):
        return None
    anchor = find_anchor(rule, state)
    if anchor is None:
        return None
    anchor_at, anchor_event = anchor
    fire_at = anchor_at + rule.when.after
    if not fire_at <= now <= fire_at + rule.expires:
        return None
    between = [e for e in state.events if anchor_at <= e.occurred_at <= now]
    if any(e.name in rule.when.not_done for e in between):
        return None
    if any(all(e.name != name for e in between) for name in rule.when.done):
        return None
    event_id = anchor_event.id if anchor_event else None
    return Firing(state.user.id, anchor_at, event_id, state.suppressed)


def in_audience(rule: Rule, state: UserState) -> bool:
    audience, user = rule.audience, state.user
    if audience.persona is not None and not py_condition(audience.persona, user.persona):
        return False
    if audience.signup_source is not None and not py_condition(
        audience.signup_source, user.signup_source
    ):
        return False
    return properties_match(user.traits, audience.traits)


def properties_match(document: dict[str, Any], conditions: dict[str, Ops]) -> bool:
    return all(py_condition(ops, document.get(key)) for key, ops in conditions.items())


def find_anchor(rule: Rule, state: UserState) -> tuple[datetime, Event | None] | None:
    """The signup time, or the user's first event matching `since` and `where`."""
    if rule.when.anchored_on_signup:
        at = state.user.signed_up_at
        return None if at is None else (at, None)
    matching = [
        e
        for e in state.events
        if e.name == rule.when.since and properties_match(e.properties, rule.when.where)
    ]
    if not matching:
        return None
    first = min(matching, key=lambda e: (e.occurred_at, e.id))
    return first.occurred_at, first
