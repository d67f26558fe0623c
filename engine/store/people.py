"""People and what they do, as ingestion writes them: users, accounts, events, aliases and
suppressions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.engine import Row

from engine.model import UserColumns
from engine.sql.dialect import upsert_statement
from engine.sql.schema import accounts, events, suppressions, users
from engine.store.connection import Database, writing
from engine.store.records import AccountUpsert, Alias, Aliased, EventRecord, UserUpsert

_COLUMN_FIELDS = tuple(f.name for f in fields(UserColumns))


class People:
    """Ingestion's view of the database (files and the HTTP API)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def upsert_users(self, records: Iterable[UserUpsert], now: datetime) -> int:
        """Identify users: traits merge shallowly (a later value replaces the whole trait,
        null included), columns keep their stored value where the new one is None.

        The same on both databases: insert the new users, lock every row of the batch, merge
        in Python, update. Taking the write lock first keeps SQLite from failing a read-then-
        write upgrade, and the row locks keep concurrent identifies on PostgreSQL serial."""
        merged = _merge_same_user(records)
        if not merged:
            return 0
        with writing(self.db) as connection:
            connection.execute(
                upsert_statement(connection.dialect.name, users).on_conflict_do_nothing(
                    index_elements=["id"]
                ),
                [_user_row(r, now) for r in merged],
            )
            ids = [r.id for r in merged]
            stored = {
                row.id: row
                for row in connection.execute(
                    select(users).where(users.c.id.in_(ids)).with_for_update()
                )
            }
            connection.execute(
                update(users).where(users.c.id == bindparam("user_id")),
                [_merged_row(stored[r.id], r, now) for r in merged],
            )
        return len(merged)

    def insert_events(self, records: Sequence[EventRecord], now: datetime) -> int:
        """Insert events; a `message_id` seen before is skipped. Returns how many were new."""
        if not records:
            return 0
        rows = [
            {
                "user_id": r.user_id,
                "name": r.name,
                "occurred_at": r.occurred_at,
                "properties": r.properties,
                "message_id": r.message_id,
                "received_at": now,
            }
            for r in records
        ]
        with writing(self.db) as connection:
            statement = upsert_statement(connection.dialect.name, events).on_conflict_do_nothing(
                index_elements=["message_id"]
            )
            if connection.dialect.name == "sqlite":
                # sqlite3 sums what each row inserted: exact, and a third cheaper than RETURNING
                # (PostgreSQL's batched executemany reports no row count, hence RETURNING).
                return int(connection.execute(statement, rows).rowcount)
            return len(connection.execute(statement.returning(events.c.id), rows).all())

    def upsert_accounts(self, records: Iterable[AccountUpsert], now: datetime) -> int:
        """Group calls: insert new accounts, then merge traits into every account of the
        batch under a row lock (the same scheme as `upsert_users`)."""
        merged: dict[str, AccountUpsert] = {}
        for record in records:
            previous = merged.get(record.id)
            traits = {**previous.traits, **record.traits} if previous else record.traits
            merged[record.id] = AccountUpsert(record.id, traits)
        if not merged:
            return 0
        with writing(self.db) as connection:
            connection.execute(
                upsert_statement(connection.dialect.name, accounts).on_conflict_do_nothing(
                    index_elements=["id"]
                ),
                [
                    {"id": r.id, "traits": r.traits, "created_at": now, "updated_at": now}
                    for r in merged.values()
                ],
            )
            stored = {
                row.id: row.traits or {}
                for row in connection.execute(
                    select(accounts.c.id, accounts.c.traits)
                    .where(accounts.c.id.in_(list(merged)))
                    .with_for_update()
                )
            }
            connection.execute(
                update(accounts).where(accounts.c.id == bindparam("account_id")),
                [
                    {"account_id": r.id, "traits": {**stored[r.id], **r.traits}, "updated_at": now}
                    for r in merged.values()
                ],
            )
        return len(merged)

    def analyze(self) -> bool:
        """Refresh the planner's statistics on users, accounts and events after a bulk load;
        return whether anything ran. PostgreSQL only: it plans from statistics that, until
        autovacuum gets round to a freshly loaded table, describe it as empty, and the
        trial-account rule's first pass over 20k demo users then took 8.3 s, 0.45 s after
        ANALYZE. SQLite's planner did no better with them (`python -m bench --scale`)."""
        if self.db.dialect.name != "postgresql":
            return False
        with writing(self.db) as connection:
            connection.exec_driver_sql("ANALYZE users, accounts, events")
        return True

    def alias_events(self, aliases: Sequence[Alias]) -> Aliased:
        """Re-point the events of each previous id to its user id, all in one transaction
        and in order (so a chain a -> b -> c ends at c).

        A previous id with a user row of its own (identified, or named by a group call) is
        refused and keeps its events: an alias merges an anonymous id into a user, and would
        otherwise hand a user's whole history to whoever names it (issue 15)."""
        moves = [a for a in aliases if a.previous_id != a.user_id]
        if not moves:
            return Aliased(0, frozenset())
        moved = 0
        with writing(self.db) as connection:
            previous = sorted({a.previous_id for a in moves})
            known = select(users.c.id).where(users.c.id.in_(previous))
            refused = frozenset(connection.execute(known).scalars())
            for alias in moves:
                if alias.previous_id in refused:
                    continue
                # Checked again in the statement: an identify may have landed since.
                anonymous = ~exists().where(users.c.id == alias.previous_id)
                result = connection.execute(
                    update(events)
                    .where(events.c.user_id == alias.previous_id, anonymous)
                    .values(user_id=alias.user_id)
                )
                moved += int(result.rowcount)
        return Aliased(moved, refused)

    def suppress(
        self,
        now: datetime,
        *,
        user_id: str | None = None,
        email: str | None = None,
        reason: str = "unsubscribed",
    ) -> None:
        with writing(self.db) as connection:
            connection.execute(
                upsert_statement(connection.dialect.name, suppressions).on_conflict_do_nothing(),
                {
                    "user_id": user_id,
                    "email": email.lower() if email else None,
                    "reason": reason,
                    "created_at": now,
                },
            )


def _merge_same_user(records: Iterable[UserUpsert]) -> list[UserUpsert]:
    """One row per user id (a statement may not upsert a row twice); later values win."""
    merged: dict[str, UserUpsert] = {}
    for record in records:
        previous = merged.get(record.id)
        if previous is None:
            merged[record.id] = record
            continue
        fields = {
            name: getattr(record, name)
            if getattr(record, name) is not None
            else getattr(previous, name)
            for name in _COLUMN_FIELDS
        }
        merged[record.id] = UserUpsert(
            id=record.id, traits={**previous.traits, **record.traits}, **fields
        )
    return list(merged.values())


def _merged_row(stored: Row[Any], record: UserUpsert, now: datetime) -> dict[str, Any]:
    columns = {
        name: getattr(record, name) if getattr(record, name) is not None else getattr(stored, name)
        for name in _COLUMN_FIELDS
    }
    traits = {**(stored.traits or {}), **record.traits}
    return {"user_id": record.id, **columns, "traits": traits, "updated_at": now}


def _user_row(record: UserUpsert, now: datetime) -> dict[str, Any]:
    return {
        "id": record.id,
        "traits": record.traits,
        "created_at": now,
        "updated_at": now,
        **{name: getattr(record, name) for name in _COLUMN_FIELDS},
    }
