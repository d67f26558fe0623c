"""The synthetic population of engine.demo, generated in bounded chunks of users instead of all
at once, so that a million users and ten million events never sit in memory together.

The users and their events are exactly those of `engine.demo.generate` (same seed, same draws,
same order: a test checks it). `history` adds that many `page_viewed` events per user, which
no rule reads, from a random stream of its own (so the demo's draws do not move): the scaling
target is stated at ten events a user, the demo makes about five."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.store import EventRecord, UserUpsert
from engine.whatif.population import Population, _Accounts, _events, _user

CHUNK_USERS = 10_000
HISTORY_EVENT = "page_viewed"
HISTORY_SALT = 0x5EED


@dataclass(frozen=True)
class Shape:
    users: int
    seed: int
    now: datetime
    days: float
    history: int  # extra page_viewed events per user


def stream(shape: Shape, chunk: int = CHUNK_USERS) -> Iterator[Population]:
    """Populations of at most `chunk` users each, in signup order, with their events."""
    rng = random.Random(shape.seed)
    history_rng = random.Random(shape.seed ^ HISTORY_SALT)
    now = shape.now.replace(second=0, microsecond=0)
    accounts = _Accounts()
    span = shape.days * 86400
    # The demo draws every signup time first and sorts them: so must this, to stay identical.
    signups = sorted(now - timedelta(seconds=rng.uniform(0, span)) for _ in range(shape.users))
    part = Population()
    for index, signed_up_at in enumerate(signups):
        user = _user(rng, index, signed_up_at.replace(microsecond=0), accounts, shape.seed)
        part.users.append(user)
        part.events.extend(_events(rng, user, now, shape.seed))
        part.events.extend(_history(history_rng, user, now, shape))
        if len(part.users) == chunk:
            yield part
            part = Population()
    if part.users:
        yield part


def _history(
    rng: random.Random, user: UserUpsert, now: datetime, shape: Shape
) -> list[EventRecord]:
    assert user.signed_up_at is not None
    alive = max((now - user.signed_up_at).total_seconds(), 1.0)
    return [
        EventRecord(
            user.id,
            HISTORY_EVENT,
            user.signed_up_at + timedelta(seconds=int(rng.uniform(0, alive))),
            {"path": f"/p/{rng.randrange(50)}"},
            f"hist-{shape.seed}-{user.id}-{n}",
        )
        for n in range(shape.history)
    ]
