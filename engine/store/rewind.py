"""The writes only a replay makes, on an isolated store (`Store.isolated`): forget the ledger
from a time on, and hold back suppressions until the simulated clock reaches them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from engine.sql.schema import deliveries, guide_flags, suppressions
from engine.store.connection import Database, writing


class Rewind:
    """A replay's view of the database; never used on a real store."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def forget_ledger(self, since: datetime | None = None) -> None:
        """Delete the ledger rows (and their guide flags) created at or after `since`, or
        all of them: only ever called on an isolated store, to replay from a known ledger."""
        hidden = select(deliveries.c.id)
        if since is not None:
            hidden = hidden.where(deliveries.c.created_at >= since)
        with writing(self.db) as connection:
            connection.execute(delete(guide_flags).where(guide_flags.c.delivery_id.in_(hidden)))
            connection.execute(delete(deliveries).where(deliveries.c.id.in_(hidden)))

    def withhold_suppressions(self, after: datetime) -> list[dict[str, Any]]:
        """Delete and return the suppressions created after `after` (isolated stores only):
        a replay puts each back once the simulated clock reaches its `created_at`."""
        recent = suppressions.c.created_at > after
        with writing(self.db) as connection:
            rows = connection.execute(
                select(suppressions).where(recent).order_by(suppressions.c.id)
            ).all()
            connection.execute(delete(suppressions).where(recent))
        return [dict(row._mapping) for row in rows]

    def restore_suppressions(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            with writing(self.db) as connection:
                connection.execute(suppressions.insert(), list(rows))
