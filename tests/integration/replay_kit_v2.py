"""A v2 rule pack (a win-back per lapse, every occurrence, repeats, one firing per account)
and a recorded population of workspaces over six days, for the v2 replay and diff tests. It
uses replay_kit's templates and runner (quiet hours, a daily cap of two)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from engine.store import AccountUpsert, EventRecord, Store, UserUpsert
from tests.integration.replay_kit import T0, ZONES

DAYS = 6

RULES = """
rules:
  - id: lapsed
    when:
      since: {event: run, occurrence: last}
      after: 20h
      expires: 6h
      done: [{event: run, within: 3d, count: {gte: 2}}]
    repeat_after: 1d
    send: {email: hello}
    holdout: 20%
  - id: each-lapse
    when:
      since: {event: run, occurrence: last}
      after: 1d
      expires: 12h
    once_per: occurrence
    send: {guide: come_back}
  - id: each-flow
    when:
      since: {event: started, key: flow}
      after: 2h
      not_done: [{event: saved, within: 2h}]
      expires: 1d
    once_per: occurrence
    send: {email: hello, guide: save_tour}
  - id: trial-workspace
    priority: 5
    audience:
      account: {plan: trial}
    when:
      since: account_created
      after: 1d
      expires: 2d
      account_not_done: [run]
    once_per: account
    send: {email: hello, guide: setup}
    holdout: 30%
  - id: team-ping
    when:
      after: 0
      expires: 5d
      account_done: [{event: started, within: 1d}]
    once_per: account
    repeat_after: 2d
    send: {email: hello}
"""

PLANS = ("trial", "trial", "free")
EVENTS = ("run", "run", "started", "saved")


def population(n: int = 36, seed: int = 5) -> tuple[list[UserUpsert], list[EventRecord]]:
    """Users in nine workspaces (and a few without one) signing up over the first two days,
    their runs, started and saved workflows over the six days."""
    rng = random.Random(seed)
    users, events = [], []
    for index in range(n):
        user_id = f"v{index:02d}"
        signed_up = T0 + timedelta(minutes=rng.randrange(0, 2 * 24 * 60, 11))
        users.append(
            UserUpsert(
                id=user_id,
                traits={"first_name": "Al"},
                email=None if index % 11 == 4 else f"{user_id}@example.com",
                persona="data_engineer",
                signup_source="organic",
                signed_up_at=signed_up,
                timezone=rng.choice(ZONES),
                account_id=None if index % 9 == 8 else f"W{index % 9}",
            )
        )
        for number in range(rng.randint(0, 8)):
            at = signed_up + timedelta(minutes=rng.randrange(1, 4 * 24 * 60))
            name = rng.choice(EVENTS)
            properties: dict[str, Any] = {"flow": f"f{rng.randrange(3)}"} if name != "run" else {}
            events.append(EventRecord(user_id, name, at, properties, f"{user_id}-{number}"))
    return users, events


def accounts() -> list[AccountUpsert]:
    """Group calls for eight of the nine workspaces (W7 has none: no account traits)."""
    return [AccountUpsert(f"W{i}", {"plan": PLANS[i % 3]}) for i in range(8)]


# Users who unsubscribe while the daemon runs, and when (between two hourly ticks).
UNSUBSCRIBES = {"v03": T0 + timedelta(hours=30, minutes=30), "v10": T0 + timedelta(hours=70.5)}


def seed(store: Store) -> None:
    users, events = population()
    store.people.upsert_accounts(accounts(), T0)
    store.people.upsert_users(users, T0)
    store.people.insert_events(events, T0)
