"""Each user's whole state (user, events, ledger rows, suppression), and the population's, for
the reference evaluator: the oracle the SQL evaluator is tested against, and the benchmarks'
baseline."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.engine import Row

from engine.model import USER_FIELDS, Delivered, Event, User, UserState, World
from engine.sql.schema import accounts, deliveries, events, suppressions, users
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

    def world(self) -> World:
        """The whole population: every user's state, the accounts' traits and the ledger."""
        states = tuple(self.user_states())
        with self.db.connect() as connection:
            traits = {row.id: row.traits or {} for row in connection.execute(select(accounts))}
        ledger = tuple(d for state in states for d in state.delivered)
        return World(states, traits, ledger)

    def _states(self, connection: Connection, batch: Sequence[Row[Any]]) -> Iterator[UserState]:
        ids = [row.id for row in batch]
        by_user: dict[str, list[Event]] = {i: [] for i in ids}
        for e in connection.execute(select(events).where(events.c.user_id.in_(ids))):
            by_user[e.user_id].append(
                Event(e.user_id, e.name, e.occurred_at, e.properties or {}, e.id)
            )
        delivered: dict[str, list[Delivered]] = {i: [] for i in ids}
        ledger = select(
            deliveries.c.rule_id,
            deliveries.c.user_id,
            deliveries.c.subject,
            deliveries.c.occurrence,
            deliveries.c.created_at,
        ).where(deliveries.c.user_id.in_(ids))
        for d in connection.execute(ledger.order_by(deliveries.c.id)):
            delivered[d.user_id].append(
                Delivered(d.rule_id, d.user_id, d.subject, d.occurrence, d.created_at)
            )
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
                delivered_rules=frozenset(d.rule_id for d in delivered[row.id]),
                suppressed=row.id in suppressed or (row.email or "").lower() in emails,
                delivered=tuple(delivered[row.id]),
            )
