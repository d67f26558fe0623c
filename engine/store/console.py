"""The web console's read-only listings. Every listing takes a page (LIMIT/OFFSET, the caller
bounds both) and reads through an index: a user by id or email, a user's events, ledger rows
and guide flags by user id, a rule's counts by (rule_id, status, created_at)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, literal, or_, select, union_all
from sqlalchemy.sql import ColumnElement

from engine.model import Status
from engine.sql.schema import accounts, deliveries, events, guide_flags, suppressions, users
from engine.store.connection import Database

# What needs a person's attention comes first in the deliveries listing.
ATTENTION = (Status.UNKNOWN.value, Status.FAILED.value, Status.RETRYING.value)
DAY, WEEK = timedelta(days=1), timedelta(days=7)


class ConsoleReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def rule_counts(self, now: datetime) -> dict[str, dict[str, tuple[int, int, int]]]:
        """rule id -> status -> (rows created in the last 24h, last 7d, ever)."""
        created = deliveries.c.created_at
        statement = select(
            deliveries.c.rule_id,
            deliveries.c.status,
            func.sum(case((created >= now - DAY, 1), else_=0)),
            func.sum(case((created >= now - WEEK, 1), else_=0)),
            func.count(),
        ).group_by(deliveries.c.rule_id, deliveries.c.status)
        counts: dict[str, dict[str, tuple[int, int, int]]] = {}
        with self.db.connect() as connection:
            for rule_id, status, day, week, ever in connection.execute(statement):
                counts.setdefault(rule_id, {})[status] = (int(day), int(week), int(ever))
        return counts

    def deliveries_page(
        self,
        *,
        limit: int,
        offset: int,
        status: str | None = None,
        rule_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Ledger rows, those needing attention (unknown, failed, retrying) first, then the
        newest first. `since`/`until`: created_at in [since, until)."""
        statement = select(deliveries)
        for condition in _delivery_filters(status, rule_id, since, until):
            statement = statement.where(condition)
        attention = case((deliveries.c.status.in_(ATTENTION), 0), else_=1)
        statement = statement.order_by(attention, deliveries.c.id.desc()).limit(limit)
        with self.db.connect() as connection:
            rows = connection.execute(statement.offset(offset))
            return [dict(row._mapping) for row in rows]

    def find_users(self, query: str, *, limit: int) -> list[dict[str, Any]]:
        """Users whose id is `query`, or whose email is (case as stored, or lower case)."""
        statement = (
            select(users.c.id, users.c.email, users.c.persona, users.c.signup_source)
            .where(
                or_(
                    users.c.id == query,
                    users.c.email == query,
                    users.c.email == query.lower(),
                )
            )
            .order_by(users.c.id)
            .limit(limit)
        )
        with self.db.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def user(self, user_id: str) -> dict[str, Any] | None:
        with self.db.connect() as connection:
            row = connection.execute(select(users).where(users.c.id == user_id)).first()
            if row is None:
                return None
            user = dict(row._mapping)
            account = None
            if user["account_id"]:
                found = connection.execute(
                    select(accounts).where(accounts.c.id == user["account_id"])
                ).first()
                account = dict(found._mapping) if found else None
        user["account"] = account
        return user

    def suppressions(self, user_id: str, email: str | None) -> list[dict[str, Any]]:
        matches: list[ColumnElement[bool]] = [suppressions.c.user_id == user_id]
        if email:
            matches.append(suppressions.c.email == email.lower())
        statement = select(suppressions).where(or_(*matches)).order_by(suppressions.c.id)
        with self.db.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(statement)]

    def timeline(self, user_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        """The user's events, ledger rows (at fire_at) and guide flags (at set_at) on one
        axis, newest first: one page of (kind, at, id) from one indexed UNION, then the
        page's rows themselves."""
        axis = union_all(
            select(
                literal("event").label("kind"),
                events.c.occurred_at.label("at"),
                events.c.id.label("id"),
            ).where(events.c.user_id == user_id),
            select(literal("delivery"), deliveries.c.fire_at, deliveries.c.id).where(
                deliveries.c.user_id == user_id
            ),
            select(literal("guide"), guide_flags.c.set_at, guide_flags.c.id).where(
                guide_flags.c.user_id == user_id
            ),
        ).subquery()
        page = (
            select(axis.c.kind, axis.c.at, axis.c.id)
            .order_by(axis.c.at.desc(), axis.c.kind, axis.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        tables = {"event": events, "delivery": deliveries, "guide": guide_flags}
        with self.db.connect() as connection:
            slots = [(row.kind, row.id) for row in connection.execute(page)]
            found: dict[tuple[str, int], dict[str, Any]] = {}
            for kind, table in tables.items():
                ids = [item_id for slot_kind, item_id in slots if slot_kind == kind]
                if ids:
                    for row in connection.execute(select(table).where(table.c.id.in_(ids))):
                        found[(kind, row.id)] = dict(row._mapping)
        return [{"kind": kind, **found[(kind, item_id)]} for kind, item_id in slots]


def _delivery_filters(
    status: str | None, rule_id: str | None, since: datetime | None, until: datetime | None
) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if status:
        conditions.append(deliveries.c.status == status)
    if rule_id:
        conditions.append(deliveries.c.rule_id == rule_id)
    if since is not None:
        conditions.append(deliveries.c.created_at >= since)
    if until is not None:
        conditions.append(deliveries.c.created_at < until)
    return conditions
