"""The statements behind the queue gauges (`engine.telemetry.queue`), cheap enough to run
at every scrape: counts over the (status, send_at) index restricted to the waiting
statuses (never the ever-growing sent rows), one index seek per due status for the oldest
send_at, and the small rule_leases table."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from engine.sql.schema import deliveries, rule_leases
from engine.store.connection import Database
from engine.telemetry.queue import DUE_STATUSES, QUEUE_STATUSES, QueueState

log = logging.getLogger(__name__)


class Gauges:
    def __init__(self, db: Database) -> None:
        self.db = db

    def queue(self, now: datetime) -> QueueState:
        c = deliveries.c
        depth = (
            select(c.status, func.count()).where(c.status.in_(QUEUE_STATUSES)).group_by(c.status)
        )
        # One min() per status, each an index seek on (status, send_at); an IN list would
        # make PostgreSQL read every due row's index entry.
        oldest = [
            select(func.min(c.send_at)).where(c.status == status, c.send_at <= now)
            for status in DUE_STATUSES
        ]
        leases = (
            select(rule_leases.c.holder, func.count())
            .where(rule_leases.c.expires_at > now)
            .group_by(rule_leases.c.holder)
        )
        with self.db.connect() as connection:
            counts = {status: int(n) for status, n in connection.execute(depth)}
            due = [t for t in (connection.execute(s).scalar() for s in oldest) if t is not None]
            holders = {holder: int(n) for holder, n in connection.execute(leases)}
        return QueueState(counts, min(due, default=None), holders)

    def queue_or_none(self, now: datetime) -> QueueState | None:
        """For a scrape: None, logged, when the database cannot be read."""
        try:
            return self.queue(now)
        except SQLAlchemyError as exc:
            log.warning("queue gauges: the database cannot be read: %s", exc.__class__.__name__)
            return None
