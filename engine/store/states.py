"""Each user's whole state (user, events, rules delivered, suppression), for the reference
evaluator: the oracle the SQL evaluator is tested against, and the benchmarks' baseline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import Row

from engine.model import USER_FIELDS, Event, User, UserState
from engine.sql.schema import deliveries, events, suppressions, users
from engine.store.connection import BATCH, Database


class States:
    """The reference evaluator's view of the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def user_states(self, user_ids: Sequence[str] | None = None) -> Iterator[UserState]:
        """Each user's whole state, for the reference evaluator (tests and benchmarks)."""
        user_query = select(users).order_by(users.c.id)
        if user_ids is not None:
            user_query = user_query.where(users.c.id.in_(list(user_ids)))
        with self.db.connect() as connection:
            for batch in (
                connection.execution_options(yield_per=BATCH).execute(user_query).partitions()
            ):
                yield from self._states(connection, batch)

    def _states(self, connection: Connection, batch: Sequence[Row[Any]]) -> Iterator[UserState]:
        ids = [row.id for row in batch]
        by_user: dict[str, list[Event]] = {i: [] for i in ids}
        for e in connection.execute(select(events).where(events.c.user_id.in_(ids))):
            by_user[e.user_id].append(
                Event(e.user_id, e.name, e.occurred_at, e.properties or {}, e.id)
            )
        delivered: dict[str, set[str]] = {i: set() for i in ids}
        for d in connection.execute(
            select(deliveries.c.user_id, deliveries.c.rule_id).where(deliveries.c.user_id.in_(ids))
        ):
            delivered[d.user_id].add(d.rule_id)
        suppressed = {
            row.user_id
            for row in connection.execute(
                select(suppressions.c.user_id).where(suppressions.c.user_id.in_(ids))
            )
        }
        addresses = [row.email.lower() for row in batch if row.email]
        emails = {
            row.email
            for row in connection.execute(
                select(suppressions.c.email).where(suppressions.c.email.in_(addresses))
            )
        }
        for row in batch:
            user = User(**{f: getattr(row, f) for f in USER_FIELDS})
            yield UserState(
                user=User(**{**user.__dict__, "traits": user.traits or {}}),
                events=tuple(sorted(by_user[row.id], key=lambda e: (e.occurred_at, e.id))),
                delivered_rules=frozenset(delivered[row.id]),
                suppressed=row.id in suppressed or (row.email or "").lower() in emails,
            )
