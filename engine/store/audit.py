"""The web console's operator actions and their audit trail, written in one transaction:
an action that happened is always on record, and a record never names an action that did
not happen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select

from engine.sql.schema import audit, suppressions, users
from engine.store.connection import Database, writing

DETAIL_LIMIT = 2000  # characters of detail kept per row: a record, not a dump


@dataclass(frozen=True)
class Actor:
    name: str
    role: str


class Audit:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        actor: Actor,
        action: str,
        now: datetime,
        *,
        target: str | None = None,
        detail: str | None = None,
    ) -> None:
        with writing(self.db) as connection:
            connection.execute(audit.insert().values(_row(actor, action, now, target, detail)))

    def lift_suppression(
        self, actor: Actor, suppression_id: int, user_id: str, now: datetime
    ) -> dict[str, Any] | None:
        """Delete one of `user_id`'s suppressions and record who did it; None (and nothing
        written) when that user has no such suppression."""
        with writing(self.db) as connection:
            row = connection.execute(
                select(suppressions).where(suppressions.c.id == suppression_id)
            ).first()
            email = connection.execute(
                select(users.c.email).where(users.c.id == user_id)
            ).scalar_one_or_none()
            if row is None or not _belongs(row._mapping, user_id, email):
                return None
            connection.execute(delete(suppressions).where(suppressions.c.id == suppression_id))
            detail = f"reason={row.reason} email={row.email or ''} created_at={row.created_at}"
            connection.execute(
                audit.insert().values(
                    _row(actor, "lift_suppression", now, f"user:{user_id}", detail)
                )
            )
        return dict(row._mapping)

    def page(self, *, limit: int, offset: int) -> list[dict[str, Any]]:
        statement = (
            select(audit).order_by(audit.c.at.desc(), audit.c.id.desc()).limit(limit).offset(offset)
        )
        with self.db.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def count(self) -> int:
        with self.db.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(audit)).scalar_one())


def _belongs(row: Any, user_id: str, email: str | None) -> bool:
    """A suppression is the user's by id, or by the address (bounces) it holds now."""
    if row["user_id"] is not None:
        return bool(row["user_id"] == user_id)
    return bool(email) and row["email"] == (email or "").lower()


def _row(
    actor: Actor, action: str, now: datetime, target: str | None, detail: str | None
) -> dict[str, Any]:
    return {
        "at": now,
        "actor": actor.name,
        "role": actor.role,
        "action": action,
        "target": target,
        "detail": detail[:DETAIL_LIMIT] if detail else None,
    }
