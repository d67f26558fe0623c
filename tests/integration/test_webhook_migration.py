"""Migration 0008 (webhook rows name their body template) on SQLite and PostgreSQL: the rows
before it stay email rows, the downgrade drops only the column, and SQLite's rebuilt table
keeps the change-log trigger of 0007 (a deleted ledger row is still logged)."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from tests.conftest import NOW
from tests.integration.test_ledger_migration import alembic, empty

__all__ = ["empty"]

ROW = (
    "INSERT INTO deliveries (rule_id, user_id, subject, status, anchor_at, fire_at, holdout,"
    " attempts, created_at, updated_at)"
    " VALUES ('welcome', 'u1', 'u1', 'sent', :t, :t, false, 1, :t, :t)"
)


def columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("deliveries")}


def changes(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM changes")).scalar_one())


def test_rows_before_0008_stay_emails_and_the_downgrade_keeps_the_triggers(
    empty: Engine,
) -> None:
    alembic(empty, "upgrade", "0007")
    with empty.begin() as connection:
        connection.execute(text(ROW), {"t": NOW.replace(tzinfo=None)})
    alembic(empty, "upgrade", "0008")
    assert "webhook_template" in columns(empty)
    # Read by name: the store's table has the columns of later revisions too.
    with empty.connect() as connection:
        templates = connection.execute(text("SELECT webhook_template FROM deliveries")).all()
    assert templates == [(None,)]  # the email queue's, as it was

    alembic(empty, "downgrade", "0007")
    assert "webhook_template" not in columns(empty)
    with empty.connect() as connection:
        assert connection.execute(text("SELECT rule_id FROM deliveries")).scalars().all() == [
            "welcome"
        ]
    before = changes(empty)
    with empty.begin() as connection:
        connection.execute(text("DELETE FROM deliveries"))
    assert changes(empty) == before + 1  # 0007's trigger on deliveries survived the rebuild
    alembic(empty, "upgrade", "head")
    assert "webhook_template" in columns(empty)
