"""Rule leases: which `lifecycle run` replica evaluates which rule.

Any number of replicas may share one PostgreSQL database. Before each evaluation a replica
takes (or renews) the lease of every rule that is free, expired or already its own, and
evaluates only those; a replica that dies stops renewing, and its rules pass to another
replica within one lease period. Taking a lease is one conditional upsert, so two replicas
can never both hold a live lease on a rule.

Leases save work, they do not make delivery exactly-once: the ledger's unique key does. A
replica that stalls past its lease (a very long first pass) may overlap with its successor
for a while, and the ledger still writes each (rule, user) once."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from engine.sql.dialect import upsert_statement
from engine.sql.schema import rule_leases
from engine.store.connection import Database, writing


class Leases:
    def __init__(self, engine: Database, holder: str) -> None:
        self.engine = engine
        self.holder = holder  # unique per replica: host, pid and a random part

    def acquire(self, rule_ids: Iterable[str], now: datetime, period: timedelta) -> list[str]:
        """Take or renew the leases that are free, expired or ours; return the rules we hold."""
        held = []
        with writing(self.engine) as connection:
            for rule_id in sorted(rule_ids):  # one order everywhere: no deadlocks
                statement = upsert_statement(connection.dialect.name, rule_leases).values(
                    rule_id=rule_id, holder=self.holder, expires_at=now + period
                )
                taken = statement.on_conflict_do_update(
                    index_elements=["rule_id"],
                    set_={"holder": self.holder, "expires_at": now + period},
                    where=(rule_leases.c.holder == self.holder) | (rule_leases.c.expires_at <= now),
                ).returning(rule_leases.c.rule_id)
                if connection.execute(taken).first() is not None:
                    held.append(rule_id)
        return held

    def release(self) -> None:
        """Give our leases up (a clean stop), so another replica takes over at its next tick."""
        with writing(self.engine) as connection:
            connection.execute(delete(rule_leases).where(rule_leases.c.holder == self.holder))

    def holders(self) -> dict[str, tuple[str, datetime]]:
        """rule id -> (holder, expires at), for operators and tests."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(rule_leases)).all()
        return {row.rule_id: (row.holder, row.expires_at) for row in rows}
