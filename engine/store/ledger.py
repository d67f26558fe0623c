"""The ledger as evaluation writes it: candidates read in batches, ledger rows and their guide
flags written in one transaction, "on conflict do nothing" on (rule, user). The statements come
built from `engine.sql`; this module runs them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, Insert, any_, false, literal, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.sql import ColumnElement, Select

from engine.decide.firing import Candidate, Planned
from engine.model import EMAIL_COUNTED, USER_FIELDS
from engine.sql.dialect import upsert_statement
from engine.sql.ledger import FLAG_COLUMNS, LEDGER_COLUMNS
from engine.sql.schema import deliveries, guide_flags
from engine.store.connection import BATCH, Database, writing

STREAMED = {"yield_per": BATCH}
# INSERTs kept for the SELECTs they wrap: rules x kinds of scope, with room for reloads.
KEPT_INSERTS = 256

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
        self._inserts: dict[int, tuple[Select[Any], Insert]] = {}

    def candidates(
        self, statement: Select[Any], params: dict[str, Any] | None = None
    ) -> Iterator[list[Candidate]]:
        """Run a candidates query (`engine.sql.candidates`, with `params` when it was built
        for another tick) in bounded batches: memory does not grow with N."""
        with self.db.connect() as connection:
            # Per execution, not per connection: a replay runs every query on one connection;
            # and not a copy of the statement, which would lose its memoized cache key.
            result = connection.execute(statement, params, execution_options=STREAMED)
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

    def record_decided(
        self, rows: Select[Any], flags: FlagsFor | None, params: dict[str, Any] | None = None
    ) -> Decided:
        """Write ledger rows without reading them into Python: one INSERT ... SELECT of `rows`
        (`engine.sql.ledger.ledger_insert`, the decisions in SQL), "on conflict do nothing"
        like `record`, then, when the rule sets a guide, `flags(written)` for the rows it
        wrote; one transaction."""
        with writing(self.db) as connection:
            statement = self._insert_of(rows, connection.dialect.name)
            written, decided = _insert_decided(connection, statement, params)
            if flags is not None and decided.statuses:
                connection.execute(guide_flags.insert().from_select(FLAG_COLUMNS, flags(written)))
                # Every row but the held-out ones gets its flag (psycopg gives no rowcount).
                decided.guide_flags = decided.statuses.total() - decided.statuses["held_out"]
        return decided

    def _insert_of(self, rows: Select[Any], dialect: str) -> Insert:
        """The INSERT ... SELECT of `rows`, built once per `rows` statement (the runner keeps
        those): a new INSERT around it at every tick had SQLAlchemy walk the whole SELECT
        again for its cache key."""
        kept = self._inserts.get(id(rows))
        if kept is None or kept[0] is not rows:
            if len(self._inserts) >= KEPT_INSERTS:
                self._inserts.clear()
            statement: Insert = (
                upsert_statement(dialect, deliveries)
                .from_select(LEDGER_COLUMNS, rows)
                .on_conflict_do_nothing(index_elements=LEDGER_KEY)
            )
            # One statement that also says what it wrote: counting the rows afterwards took
            # two more per rule and tick (SQLite's changes(), then a count by status).
            statement = statement.returning(deliveries.c.id, deliveries.c.status)
            kept = self._inserts[id(rows)] = (rows, statement)
        return kept[1]

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
    connection: Connection,
    statement: Insert,
    params: dict[str, Any] | None,
) -> tuple[ColumnElement[bool], Decided]:
    """Run one INSERT ... SELECT into the ledger: which rows it wrote (a condition on their
    ids), and how many by status."""
    rows = connection.execute(statement, params).all()
    decided = Decided(Counter(row.status for row in rows))
    if not rows:
        return false(), decided
    ids = [row.id for row in rows]
    if connection.dialect.name == "postgresql":
        # The sequence may interleave other sessions' rows: name the ids themselves.
        listed = literal(ids, postgresql.ARRAY(BigInteger()))
        return deliveries.c.id == any_(listed), decided
    # SQLite has one writer at a time and numbers new rows after the last one: the rows
    # this statement wrote are one range, however many (no list of ids to bind).
    return deliveries.c.id.between(min(ids), max(ids)), decided


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
        "variant": p.variant,
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
