"""Migration 0010 (a ledger row names its variant) on SQLite and PostgreSQL: the rows before
it have no variant, the downgrade drops only the column, and SQLite's rebuilt table keeps the
change-log trigger of 0007."""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from engine.store import Store
from tests.conftest import NOW
from tests.integration.test_ledger_migration import alembic, empty
from tests.integration.test_webhook_migration import ROW, changes, columns

__all__ = ["empty"]


def test_rows_before_0010_have_no_variant_and_the_downgrade_keeps_the_triggers(
    empty: Engine,
) -> None:
    alembic(empty, "upgrade", "0009")
    with empty.begin() as connection:
        connection.execute(text(ROW), {"t": NOW.replace(tzinfo=None)})
    alembic(empty, "upgrade", "0010")
    assert "variant" in columns(empty)
    (row,) = Store(empty).reads.deliveries()
    assert row["variant"] is None

    alembic(empty, "downgrade", "0009")
    assert "variant" not in columns(empty)
    assert "webhook_template" in columns(empty)
    before = changes(empty)
    with empty.begin() as connection:
        connection.execute(text("DELETE FROM deliveries"))
    assert changes(empty) == before + 1  # 0007's trigger on deliveries survived the rebuild
    indexes = {index["name"] for index in inspect(empty).get_indexes("deliveries")}
    assert "ix_deliveries_rule_id_status_created_at" in indexes  # and 0009's index
    alembic(empty, "upgrade", "head")
    assert "variant" in columns(empty)
