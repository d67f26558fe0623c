"""What the product's frontend reads and answers over HTTP: guide flags, their interactions,
and one-click unsubscribes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update

from engine.sql.dialect import upsert_statement
from engine.sql.schema import events, guide_flags, suppressions, users
from engine.store.connection import Database, writing

GUIDE_SHOWN = ("active", "seen")


GUIDE_STATUS = {"seen": "seen", "dismissed": "dismissed", "completed": "completed"}


class Guides:
    """The HTTP API's view of the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def active_guides(self, user_id: str, now: datetime) -> list[dict[str, Any]]:
        """Flags the frontend should show: not dismissed, not completed, not expired."""
        statement = (
            select(guide_flags)
            .where(
                guide_flags.c.user_id == user_id,
                guide_flags.c.status.in_(GUIDE_SHOWN),
                or_(guide_flags.c.expires_at.is_(None), guide_flags.c.expires_at > now),
            )
            .order_by(guide_flags.c.set_at, guide_flags.c.id)
        )
        with self.db.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def record_guide_interaction(
        self, user_id: str, guide_id: str, action: str, now: datetime
    ) -> bool:
        """Mark the user's shown flag for `guide_id` and record a `guide_<action>` event in
        the same transaction. False when the user has no such guide showing."""
        with writing(self.db) as connection:
            flag = connection.execute(
                select(guide_flags)
                .where(
                    guide_flags.c.user_id == user_id,
                    guide_flags.c.guide_id == guide_id,
                    guide_flags.c.status.in_(GUIDE_SHOWN),
                    or_(guide_flags.c.expires_at.is_(None), guide_flags.c.expires_at > now),
                )
                .order_by(guide_flags.c.id.desc())
                .limit(1)
                .with_for_update()
            ).first()
            if flag is None:
                return False
            connection.execute(
                update(guide_flags)
                .where(guide_flags.c.id == flag.id)
                .values(status=GUIDE_STATUS[action], updated_at=now)
            )
            connection.execute(
                events.insert().values(
                    user_id=user_id,
                    name=f"guide_{action}",
                    occurred_at=now,
                    properties={"guide_id": guide_id, "rule_id": flag.rule_id},
                    message_id=None,
                    received_at=now,
                )
            )
        return True

    def unsubscribe(self, user_id: str, now: datetime) -> bool:
        """Suppress the user's email (idempotent) and record an `unsubscribed` event once.
        False when the user is unknown."""
        with writing(self.db) as connection:
            known = connection.execute(select(users.c.id).where(users.c.id == user_id)).first()
            if known is None:
                return False
            inserted = connection.execute(
                upsert_statement(connection.dialect.name, suppressions)
                .on_conflict_do_nothing()
                .returning(suppressions.c.id),
                {"user_id": user_id, "email": None, "reason": "unsubscribed", "created_at": now},
            ).first()
            if inserted is not None:
                connection.execute(
                    events.insert().values(
                        user_id=user_id,
                        name="unsubscribed",
                        occurred_at=now,
                        properties={},
                        message_id=None,
                        received_at=now,
                    )
                )
        return True

    def is_suppressed(self, user_id: str) -> bool:
        with self.db.connect() as connection:
            user = connection.execute(select(users.c.email).where(users.c.id == user_id)).first()
            email = (user.email or "").lower() if user else ""
            row = connection.execute(
                select(suppressions.c.id)
                .where(or_(suppressions.c.user_id == user_id, suppressions.c.email == email))
                .limit(1)
            ).first()
        return row is not None
