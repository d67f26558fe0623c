"""The ledger as evaluation writes it: candidates read in batches, ledger rows and their guide
flags written in one transaction, "on conflict do nothing" on (rule, user). The statements come
built from `engine.sql`; this module runs them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, any_, false, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.sql import ColumnElement, Select

from engine.decide.firing import Candidate, Planned
from engine.model import EMAIL_COUNTED, USER_FIELDS
from engine.sql.dialect import upsert_statement
from engine.sql.ledger import FLAG_COLUMNS, LEDGER_COLUMNS
from engine.sql.schema import deliveries, guide_flags
from engine.store.connection import BATCH, Database, writing

# The ledger's unique key: two writers of one firing conflict on it, whoever they are.
LEDGER_KEY = ["rule_id", "subject", "occurrence"]

# Given the condition that picks the ledger rows just written, the guide flags to write.
FlagsFor = Callable[[ColumnElement[bool]], Select[Any]]


@dataclass
class Decided:
    """What `record_decided` wrote: ledger rows by status, and guide flags."""

    statuses: Counter[str]
    guide_flags: int = 0


class Ledger:
    """Evaluation's view of the database (the runner is its one consumer)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def candidates(self, statement: Select[Any]) -> Iterator[list[Candidate]]:
        """Run a candidates query (`engine.sql.candidates`) in bounded batches: memory does not
        grow with N."""
        with self.db.connect() as connection:
            # Per statement, not per connection: a replay runs every query on one connection.
            result = connection.execute(statement.execution_options(yield_per=BATCH))
            for rows in result.partitions():
                yield [_candidate(row) for row in rows]

    def record(self, planned: Sequence[Planned], now: datetime) -> list[Planned]:
        """Write ledger rows and their guide flags in one transaction; return those written.

        "On conflict do nothing" on the ledger key (rule, subject, occurrence): a row another
        process or an earlier tick wrote wins, and this one is dropped, so nothing is ever
        triggered twice."""
        if not planned:
            return []
        with writing(self.db) as connection:
            statement = (
                upsert_statement(connection.dialect.name, deliveries)
                .on_conflict_do_nothing(index_elements=LEDGER_KEY)
                .returning(
                    deliveries.c.id,
                    deliveries.c.rule_id,
                    deliveries.c.subject,
                    deliveries.c.occurrence,
                )
            )
            rows = connection.execute(statement, [_delivery_row(p, now) for p in planned]).all()
            by_key = {(p.rule_id, p.subject, p.occurrence): p for p in planned}
            written = [(row.id, by_key[(row.rule_id, row.subject, row.occurrence)]) for row in rows]
            flags = [_flag_row(did, p, now) for did, p in written if p.sets_guide]
            if flags:
                connection.execute(guide_flags.insert(), flags)
        return [p for _, p in written]

    def record_decided(self, rows: Select[Any], flags: FlagsFor | None) -> Decided:
        """Write ledger rows without reading them into Python: one INSERT ... SELECT of `rows`
        (`engine.sql.ledger.ledger_insert`, the decisions in SQL), "on conflict do nothing"
        like `record`, then, when the rule sets a guide, `flags(written)` for the rows it
        wrote; one transaction."""
        with writing(self.db) as connection:
            statement = (
                upsert_statement(connection.dialect.name, deliveries)
                .from_select(LEDGER_COLUMNS, rows)
                .on_conflict_do_nothing(index_elements=LEDGER_KEY)
            )
            written, decided = _insert_decided(connection, statement)
            if flags is not None and decided.statuses:
                connection.execute(guide_flags.insert().from_select(FLAG_COLUMNS, flags(written)))
                # Every row but the held-out ones gets its flag (psycopg gives no rowcount).
                decided.guide_flags = decided.statuses.total() - decided.statuses["held_out"]
        return decided

    def email_times(
        self, user_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, list[datetime]]:
        """When each user's counted emails go (or went) out, within [start, end]."""
        statement = select(deliveries.c.user_id, deliveries.c.send_at).where(
            deliveries.c.user_id.in_(list(user_ids)),
            deliveries.c.status.in_(EMAIL_COUNTED),
            deliveries.c.email_template.is_not(None),
            deliveries.c.send_at >= start,
            deliveries.c.send_at <= end,
        )
        times: dict[str, list[datetime]] = {}
        with self.db.connect() as connection:
            for row in connection.execute(statement):
                times.setdefault(row.user_id, []).append(row.send_at)
        return times

    # A tick that writes at least this many ledger rows refreshes the ledger's statistics.
    # A first pass over existing users writes thousands of rows at once into a table whose
    # statistics still describe it as (nearly) empty, and PostgreSQL plans the next ticks'
    # NOT EXISTS probes from them until autovacuum catches up (10% of the table + 50 rows,
    # checked once a minute at best). Ordinary ticks write a few rows, which autovacuum's pace
    # handles; ANALYZE samples at most 30,000 rows, so its cost stays small next to a tick
    # that wrote a thousand.
    ANALYZE_AFTER_ROWS = 1000

    def analyze_ledger(self) -> bool:
        """Refresh the planner's statistics on the ledger and the guide flags; return whether
        anything ran. PostgreSQL only: on SQLite the benchmark's second pass was no faster
        after an ANALYZE (`python -m bench --scale`), so the engine leaves it alone there."""
        if self.db.dialect.name != "postgresql":
            return False
        with writing(self.db) as connection:
            connection.exec_driver_sql("ANALYZE deliveries, guide_flags")
        return True


def _candidate(row: Row[Any]) -> Candidate:
    user = {f: getattr(row, f) for f in USER_FIELDS}
    user["traits"] = user["traits"] or {}
    return Candidate(
        user=user,
        anchor_at=row.anchor_at,
        anchor_event_id=row.anchor_event_id,
        anchor_properties=row.anchor_properties or {},
        suppressed=row.suppression_reason is not None,
        suppression_reason=row.suppression_reason,
        subject=row.subject,
        occurrence=row.occurrence,
    )


def _insert_decided(
    connection: Connection, statement: postgresql.Insert | sqlite.Insert
) -> tuple[ColumnElement[bool], Decided]:
    """Run one INSERT ... SELECT into the ledger: which rows it wrote (a condition on their
    ids), and how many by status."""
    if connection.dialect.name == "postgresql":
        # The sequence may interleave other sessions' rows: take the ids themselves.
        returned = statement.returning(deliveries.c.id, deliveries.c.status)
        rows = connection.execute(returned).all()
        ids = literal([row.id for row in rows], postgresql.ARRAY(BigInteger()))
        return deliveries.c.id == any_(ids), Decided(Counter(row.status for row in rows))
    # SQLite has one writer at a time and numbers new rows after the last one: the rows this
    # statement wrote are the range that ends at its last rowid. Counting them there is
    # cheaper than fetching them back with RETURNING.
    last = connection.execute(statement).lastrowid
    # Not the cursor's rowcount: sqlite3 reports -1 for a statement that starts with WITH.
    count = int(connection.execute(select(func.changes())).scalar_one())
    if count <= 0 or last is None:
        return false(), Decided(Counter())
    written = deliveries.c.id.between(last - count + 1, last)
    by_status = (
        select(deliveries.c.status, func.count()).where(written).group_by(deliveries.c.status)
    )
    return written, Decided(Counter({row[0]: row[1] for row in connection.execute(by_status)}))


def _delivery_row(p: Planned, now: datetime) -> dict[str, Any]:
    return {
        "rule_id": p.rule_id,
        "user_id": p.user_id,
        "subject": p.subject,
        "occurrence": p.occurrence,
        "status": p.status.value,
        "reason": p.reason,
        "email_template": p.email_template if p.sends_email else None,
        "email_to": p.email_to,
        "webhook_template": p.webhook_template if p.sends_webhook else None,
        "guide_id": p.guide_id,
        "anchor_at": p.anchor_at,
        "anchor_event_id": p.anchor_event_id,
        "fire_at": p.fire_at,
        "send_at": p.send_at,
        "holdout": p.holdout,
        "message_id": p.message_id,
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        "sent_at": None,
    }


def _flag_row(delivery_id: int, p: Planned, now: datetime) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "user_id": p.user_id,
        "guide_id": p.guide_id,
        "rule_id": p.rule_id,
        "params": p.guide_params,
        "status": "active",
        "set_at": now,
        "expires_at": p.guide_expires_at,
        "updated_at": now,
    }
