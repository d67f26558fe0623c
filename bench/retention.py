"""What the v2 rules need on top of the demo population, from random streams of their own (so
the demo's draws, and the v1 rules' firings, do not move).

The demo spans 30 days, stores accounts only as `users.account_id`, and stops its users'
workflow runs within hours of their first save. The retention rules read further back and
wider: a last run 14-21 days ago after 3 runs in 74 days, an activation 30-37 days ago, an
account's traits. So the bench adds:
- veterans: a quarter as many users again, signed up 30-120 days before `now`, with the demo's
  onboarding events (their own accounts, a few left without one: an account of one);
- usage: everyone who saved a workflow keeps running it, every day and a half on average,
  with lapses of 14-45 days and an eventual churn, up to `now`;
- group calls: one for most accounts (plan = the first member's plan trait, name, seats); the
  rest have members but no traits, as before their first group call."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from engine.store import AccountUpsert, EventRecord, UserUpsert
from engine.whatif.population import Population, _Accounts, _events, _user

VETERAN_SHARE = 0.25  # veterans per demo user
VETERAN_DAYS = (30.0, 120.0)  # their signups, in days before now
VETERAN_SEED_OFFSET = 1000  # their ids (u<seed+1000>-...) never meet the demo's (u<seed>-...)
ALONE_P = 0.3  # a veteran alone in their account has no account at all
GROUP_CALL_P = 0.9
SEATS = (1, 3, 5, 10, 25)
RUN_GAP_HOURS = 36.0  # mean time between two runs of an active user
LAPSE_P = 0.12  # a gap is a lapse instead
LAPSE_DAYS = (14.0, 45.0)
CHURN_P = 0.03  # after each run, the user stops for good
RUN_EVENTS = ("workflow_saved", "workflow_run")
SALT = 0xC0FFEE


@dataclass
class Dataset(Population):
    """The demo's users and events, the retention layer's, and the accounts' group calls."""

    accounts: list[AccountUpsert] = field(default_factory=list)
    veterans: int = 0


def with_retention(demo: Population, seed: int, now: datetime) -> Dataset:
    """The demo population with veterans, continued usage and group calls added."""
    rng = random.Random(seed ^ SALT)
    now = now.replace(second=0, microsecond=0)
    veterans = _veterans(rng, round(len(demo.users) * VETERAN_SHARE), seed, now)
    people = [*veterans.users, *demo.users]
    events = [*veterans.events, *demo.events]
    events.extend(_usage(rng, events, now, seed))
    return Dataset(people, events, _group_calls(rng, people), len(veterans.users))


def _veterans(rng: random.Random, n: int, seed: int, now: datetime) -> Population:
    low, high = VETERAN_DAYS
    signups = sorted(now - timedelta(days=rng.uniform(low, high)) for _ in range(n))
    accounts, out = _Accounts(), Population()
    for index, signed_up_at in enumerate(signups):
        user = _user(
            rng, index, signed_up_at.replace(microsecond=0), accounts, seed + VETERAN_SEED_OFFSET
        )
        out.users.append(user)
        out.events.extend(_events(rng, user, now, seed + VETERAN_SEED_OFFSET))
    out.users = [_maybe_alone(rng, user, accounts) for user in out.users]
    return out


def _maybe_alone(rng: random.Random, user: UserUpsert, accounts: _Accounts) -> UserUpsert:
    """Some users who stayed alone in their account never had one: their own account."""
    assert user.account_id is not None
    if len(accounts.members[user.account_id]) == 1 and rng.random() < ALONE_P:
        return replace(user, account_id=None)
    return user


def _usage(
    rng: random.Random, events: list[EventRecord], now: datetime, seed: int
) -> list[EventRecord]:
    """Runs after each user's last save or run, in the order the users' events came."""
    last: dict[str, EventRecord] = {}
    for event in events:
        if event.name in RUN_EVENTS and (
            event.user_id not in last or event.occurred_at >= last[event.user_id].occurred_at
        ):
            last[event.user_id] = event
    out: list[EventRecord] = []
    for user_id, event in last.items():
        out.extend(_runs(rng, event, now, f"usage-{seed}-{user_id}"))
    return out


def _runs(rng: random.Random, start: EventRecord, now: datetime, prefix: str) -> list[EventRecord]:
    direction = start.properties.get("direction")
    at, out = start.occurred_at, list[EventRecord]()
    while rng.random() >= CHURN_P:
        at = at + _gap(rng)
        if at > now:
            break
        properties = {} if direction is None else {"direction": direction}
        out.append(
            EventRecord(
                start.user_id,
                "workflow_run",
                at.replace(microsecond=0),
                properties,
                f"{prefix}-{len(out)}",
            )
        )
    return out


def _gap(rng: random.Random) -> timedelta:
    if rng.random() < LAPSE_P:
        return timedelta(days=rng.uniform(*LAPSE_DAYS))
    return timedelta(hours=rng.expovariate(1 / RUN_GAP_HOURS))


def _group_calls(rng: random.Random, people: list[UserUpsert]) -> list[AccountUpsert]:
    """One group call for most accounts, with the first member's plan (users in signup order
    within each cohort: the first seen is the account's creator)."""
    first: dict[str, UserUpsert] = {}
    for user in people:
        if user.account_id is not None:
            first.setdefault(user.account_id, user)
    calls = []
    for account_id, creator in first.items():
        if rng.random() < GROUP_CALL_P:
            traits = {
                "name": str(creator.traits.get("company", account_id)),
                "plan": creator.traits.get("plan"),
                "seats": rng.choice(SEATS),
            }
            calls.append(AccountUpsert(account_id, traits))
    return calls
