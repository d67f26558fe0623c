"""A realistic history: the real engine ticking every simulated hour through a period, over a
synthetic population whose users respond to what they are sent.

After each tick, every new ledger row of a rule with a goal draws whether the user performs
the goal event within the goal window: with probability `baseline` when held out (or when
nothing reached them), `baseline + effect` when treated. The planted `effect` is what a
holdout comparison should measure. Draws are seeded per (seed, ledger key): the rule, the
user, and for v2 rows the subject and occurrence, so each occurrence, repeat and account
firing draws on its own, and a history is the same whatever order the database returns rows
in."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from engine.model import Status
from engine.rules.language import Goal, Ops, Rule
from engine.runner import Runner
from engine.store import EventRecord, Store
from engine.whatif.population import Population, group_calls
from engine.whatif.replay import Period

STEP = timedelta(hours=1)
BATCH = 5000


class SimulatedMail:
    """Accepts every message and sends none: simulated users have no real inboxes."""

    def send(self, message: EmailMessage) -> str:
        return "250 simulated: not sent"


@dataclass(frozen=True)
class Response:
    """How synthetic users answer a firing (probabilities in [0, 1])."""

    baseline: float
    effect: float
    seed: int

    def goal_event(self, rule: Rule, row: dict[str, Any]) -> EventRecord | None:
        """The goal event this ledger row leads to, or None."""
        if rule.goal is None:
            return None
        name = firing_name(rule, row)
        draw = random.Random(f"{self.seed}/{name}")
        chance = self.baseline + (self.effect if treated(row) else 0.0)
        if draw.random() >= min(max(chance, 0.0), 1.0):
            return None
        at = row["created_at"] + draw.random() * rule.goal.within
        return EventRecord(
            user_id=row["user_id"],
            name=rule.goal.event,
            occurred_at=at.replace(microsecond=0),
            properties=satisfying(rule.goal),
            message_id=f"sim-{self.seed}-{name.replace('/', '-')}",
        )


def firing_name(rule: Rule, row: dict[str, Any]) -> str:
    """`rule/user` for a v1 row (the draws v1 histories always had), then the subject when
    it is not the user and the occurrence when there is one: a repeat's goal event is an event
    of its own, not a duplicate of the first firing's (events dedupe on message id)."""
    parts = [rule.id, row["user_id"]]
    if row["subject"] != row["user_id"]:
        parts.append(row["subject"])
    if row["occurrence"]:
        parts.append(row["occurrence"])
    return "/".join(parts)


def treated(row: dict[str, Any]) -> bool:
    """Something reached the user: not held out, and an email or a guide went out."""
    if row["status"] == Status.HELD_OUT.value:
        return False
    return row["status"] != Status.SKIPPED.value or row["guide_id"] is not None


def satisfying(goal: Goal) -> dict[str, Any]:
    """Properties that meet the goal's `where` (keys whose only operators exclude values
    are left out: an absent property meets `ne` and `not_in`)."""
    return {key: value for key, ops in goal.where.items() if (value := _example(ops)) is not None}


def _example(ops: Ops) -> Any:
    if ops.eq is not None:
        return ops.eq
    if ops.in_:
        return ops.in_[0]
    low = ops.gte if ops.gte is not None else (ops.gt + 1 if ops.gt is not None else None)
    high = ops.lte if ops.lte is not None else (ops.lt - 1 if ops.lt is not None else None)
    if low is not None:
        return low
    if high is not None:
        return high
    return True if ops.exists else None


@dataclass
class Simulation:
    ticks: int = 0
    goals: Counter[str] = field(default_factory=Counter)  # rule -> goal events performed


def simulate(
    runner: Runner,
    population: Population,
    period: Period,
    response: Response,
    progress: Callable[[int], None] | None = None,
) -> Simulation:
    """Store the population, then tick the real engine (dispatch included, through
    `SimulatedMail`) at every step; goal events later than the period are dropped.
    `progress(ticks done)` after each tick."""
    store, engine = runner.store, runner.using(transport=SimulatedMail())
    _store_population(store, population, period.end)
    result = Simulation()
    for now in period.ticks():
        engine.tick(now)
        goals = _goal_events(runner, response, store.reads.ledger_since(now), period.end)
        store.people.insert_events([event for _, event in goals], now)
        result.ticks += 1
        result.goals.update(rule_id for rule_id, _ in goals)
        if progress is not None:
            progress(result.ticks)
    return result


def _goal_events(
    runner: Runner, response: Response, rows: list[dict[str, Any]], end: datetime
) -> list[tuple[str, EventRecord]]:
    """The goal events the rows written by one tick lead to, within the period."""
    goals = []
    for row in rows:
        event = response.goal_event(runner.rules.get(row["rule_id"]), row)
        if event is not None and event.occurred_at <= end:
            goals.append((row["rule_id"], event))
    return goals


def _store_population(store: Store, population: Population, now: datetime) -> None:
    accounts = group_calls(population.users)
    for start in range(0, len(accounts), BATCH):
        store.people.upsert_accounts(accounts[start : start + BATCH], now)
    for start in range(0, len(population.users), BATCH):
        store.people.upsert_users(population.users[start : start + BATCH], now)
    for start in range(0, len(population.events), BATCH):
        store.people.insert_events(population.events[start : start + BATCH], now)
