"""Read-only queries for people and programs: listings for the CLI, report and explain queries
built elsewhere, the ledger since a time, and whole dumps for tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, inspect, literal, select
from sqlalchemy.engine import Row
from sqlalchemy.sql import Select

from engine.model import USER_FIELDS
from engine.sql.facts import any_account
from engine.sql.schema import (
    accounts,
    deliveries,
    events,
    guide_flags,
    metadata,
    suppressions,
    users,
)
from engine.store.connection import Database


class Reads:
    """The read-only view: the CLI's listings, reports, replays and explain."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def ping(self) -> None:
        """Raise unless the database answers a trivial query (readiness checks)."""
        with self.db.connect() as connection:
            connection.execute(select(literal(1))).scalar_one()

    def user_exists(self, user_id: str) -> bool:
        with self.db.connect() as connection:
            found = connection.execute(select(users.c.id).where(users.c.id == user_id)).first()
        return found is not None

    def user(self, user_id: str) -> dict[str, Any] | None:
        """The stored user as composing reads one (`engine.model.USER_FIELDS`), or None."""
        statement = select(*[users.c[name] for name in USER_FIELDS]).where(users.c.id == user_id)
        with self.db.connect() as connection:
            row = connection.execute(statement).first()
        return None if row is None else dict(row._mapping)

    def counts(self) -> dict[str, int]:
        with self.db.connect() as connection:
            return {
                table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (users, events, deliveries, guide_flags, suppressions)
            }

    def status_counts(self) -> dict[str, int]:
        statement = select(deliveries.c.status, func.count()).group_by(deliveries.c.status)
        with self.db.connect() as connection:
            return {row[0]: row[1] for row in connection.execute(statement)}

    def deliveries(
        self,
        *,
        status: str | None = None,
        rule_id: str | None = None,
        user_id: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        statement = select(deliveries).order_by(deliveries.c.id)
        if status:
            statement = statement.where(deliveries.c.status == status)
        if rule_id:
            statement = statement.where(deliveries.c.rule_id == rule_id)
        if user_id:
            statement = statement.where(deliveries.c.user_id == user_id)
        if limit:
            statement = statement.limit(limit)
        with self.db.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def guide_flags(self, user_id: str | None = None) -> list[dict[str, Any]]:
        statement = select(guide_flags).order_by(guide_flags.c.id)
        if user_id:
            statement = statement.where(guide_flags.c.user_id == user_id)
        with self.db.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def persona_counts(self) -> list[tuple[str | None, str | None, int]]:
        statement = (
            select(users.c.persona, users.c.signup_source, func.count())
            .group_by(users.c.persona, users.c.signup_source)
            .order_by(users.c.persona, users.c.signup_source)
        )
        with self.db.connect() as connection:
            return [(r[0], r[1], r[2]) for r in connection.execute(statement)]

    def accounts(self) -> list[dict[str, Any]]:
        with self.db.connect() as connection:
            return [
                dict(row._mapping)
                for row in connection.execute(select(accounts).order_by(accounts.c.id))
            ]

    def has_accounts(self) -> bool:
        """Whether the database holds any account: a group call, or a user with an
        account_id. A database without the schema yet (or an older one) has none of what it
        lacks: this reads, it never migrates."""
        with self.db.connect() as connection:
            tables = inspect(connection)
            if not tables.has_table(users.name):
                return False
            statement = any_account(accounts_table=tables.has_table(accounts.name))
            return bool(connection.execute(statement).scalar_one())

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, in key order: tests compare these."""
        with self.db.connect() as connection:
            return {
                table.name: [
                    dict(row._mapping)
                    for row in connection.execute(select(table).order_by(*table.primary_key))
                ]
                for table in metadata.sorted_tables
            }

    def report_rows(self, statement: Select[Any]) -> list[Row[Any]]:
        """Run one read-only report query (engine/reports builds them, as engine/sql
        builds the rule queries) and return every row: report results are small aggregates."""
        with self.db.connect() as connection:
            return list(connection.execute(statement).all())

    def first_row(self, statement: Select[Any]) -> dict[str, Any] | None:
        """The first row of a read-only query built elsewhere (explain), or None."""
        with self.db.connect() as connection:
            row = connection.execute(statement).first()
        return None if row is None else dict(row._mapping)

    def ledger_since(self, start: datetime) -> list[dict[str, Any]]:
        """Ledger rows created at or after `start`, with the user's persona and signup
        source: tick by tick, and within a tick by rule, fire time and subject, an order that
        does not depend on the plan (or the touched users) that found them."""
        statement = (
            select(deliveries, users.c.persona, users.c.signup_source)
            .select_from(deliveries.outerjoin(users, users.c.id == deliveries.c.user_id))
            .where(deliveries.c.created_at >= start)
            .order_by(
                deliveries.c.created_at,
                deliveries.c.rule_id,
                deliveries.c.fire_at,
                deliveries.c.subject,
                deliveries.c.occurrence,
            )
        )
        with self.db.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]
