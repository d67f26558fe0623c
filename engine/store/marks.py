"""Incremental evaluation's state: how far ingestion has got, each rule's mark (its last
evaluation), the users a rule must look at again, and the pruning of the change log.

The marks live in the database, so they survive restarts and pass between replicas with the
rules' leases; a replica writes only the marks of evaluations it made, so a stale one can at
worst make the next evaluation read more than it needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select

from engine.rules.language import Rule
from engine.sql.dialect import upsert_statement
from engine.sql.schema import changes, evaluation_marks, events
from engine.sql.touched import Watermark, touched, touched_params
from engine.store.connection import Database, OneConnection, writing


@dataclass(frozen=True)
class Mark:
    """A rule's last evaluation: at `evaluated_at`, of the definition `fingerprint`, having
    read ingestion up to `watermark`."""

    fingerprint: str
    evaluated_at: datetime
    watermark: Watermark


class Marks:
    def __init__(self, db: Database) -> None:
        self.db = db
        # Built once per rule definition (fingerprint): a tick only binds new values.
        self._statements: dict[str, Select[Any]] = {}

    def watermark(self) -> Watermark:
        """The newest event id and change seq, every one below them committed.

        PostgreSQL hands out sequence numbers before commit, so a transaction holding id 7
        may commit after one holding id 8 was read: the watermark would then pass over 7.
        EXCLUSIVE on both tables waits for every writing transaction to finish (inserts hold
        ROW EXCLUSIVE to their commit) and holds new ones back for the two reads; SQLite
        writes one transaction at a time, in id order. An isolated replay, which holds its
        transaction to the end, does not lock: it evaluates the past, not live ingestion."""
        newest = select(
            select(func.coalesce(func.max(events.c.id), 0)).scalar_subquery(),
            select(func.coalesce(func.max(changes.c.seq), 0)).scalar_subquery(),
        )
        if self.db.dialect.name != "postgresql" or isinstance(self.db, OneConnection):
            with self.db.connect() as connection:
                event_id, change_seq = connection.execute(newest).one()
        else:
            with self.db.begin() as connection:
                connection.exec_driver_sql("LOCK TABLE events, changes IN EXCLUSIVE MODE")
                event_id, change_seq = connection.execute(newest).one()
        return Watermark(int(event_id), int(change_seq))

    def read(self, rule_ids: Iterable[str]) -> dict[str, Mark]:
        ids = sorted(set(rule_ids))
        with self.db.connect() as connection:
            rows = connection.execute(
                select(evaluation_marks).where(evaluation_marks.c.rule_id.in_(ids))
            ).all()
        return {
            row.rule_id: Mark(
                row.fingerprint, row.evaluated_at, Watermark(row.event_id, row.change_seq)
            )
            for row in rows
        }

    def touched(
        self, marked: Sequence[tuple[Rule, Mark]], now: datetime, current: Watermark, most: int
    ) -> dict[str, list[str]]:
        """Per rule, the users it must be evaluated for at `now` (ingestion read up to
        `current`) since its mark, `most` + 1 of them at most: every rule's probes over one
        connection, a few index reads each (a checkout per rule cost PostgreSQL three round
        trips)."""
        found = {}
        with self.db.connect() as connection:
            for rule, mark in marked:
                statement = self._statements.get(rule.fingerprint)
                if statement is None:
                    statement = self._statements[rule.fingerprint] = touched(rule)
                params = touched_params(rule, mark.evaluated_at, now, mark.watermark, current, most)
                found[rule.id] = list(connection.execute(statement, params).scalars())
        return found

    def save(self, marks: Mapping[str, Mark]) -> None:
        """Record the evaluations a tick made (rule id -> its mark), in one statement."""
        if not marks:
            return
        rows = [
            {
                "rule_id": rule_id,
                "fingerprint": mark.fingerprint,
                "evaluated_at": mark.evaluated_at,
                "event_id": mark.watermark.event_id,
                "change_seq": mark.watermark.change_seq,
            }
            for rule_id, mark in sorted(marks.items())  # one order everywhere: no deadlocks
        ]
        with writing(self.db) as connection:
            statement = upsert_statement(connection.dialect.name, evaluation_marks)
            excluded = statement.excluded
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["rule_id"],
                    set_={
                        name: excluded[name]
                        for name in ("fingerprint", "evaluated_at", "event_id", "change_seq")
                    },
                ),
                rows,
            )

    def forget(self) -> None:
        """Drop every mark: each rule's next evaluation is a full one (a replay's sandbox,
        whose ledger is not the one the marks were made over)."""
        with writing(self.db) as connection:
            connection.execute(delete(evaluation_marks))

    def prune(self, kept: Iterable[str]) -> int:
        """Drop the marks of rules not in `kept` (removed or disabled: their next evaluation,
        if any, will be a full one) and the changes every kept mark has read."""
        ids = sorted(set(kept))
        with writing(self.db) as connection:
            connection.execute(
                delete(evaluation_marks).where(evaluation_marks.c.rule_id.not_in(ids))
            )
            oldest = connection.execute(select(func.min(evaluation_marks.c.change_seq))).scalar()
            if oldest is None:
                return 0
            return int(connection.execute(delete(changes).where(changes.c.seq <= oldest)).rowcount)
