"""Variants: a ledger row names which of its rule's variants it sent, for the impact report's
comparison between them. A plain ADD COLUMN on both databases: SQLite keeps the table (and the
triggers of 0007 on it).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("variant", sa.String(64), nullable=True))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "sqlite":
        op.drop_column("deliveries", "variant")
        return
    # SQLite rebuilds the table to drop a column, and its triggers go with it.
    triggers = importlib.import_module(
        "engine.store.migrations.versions.0007_incremental_evaluation"
    )
    triggers.drop_triggers(dialect)
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("variant")
    triggers.create_triggers(dialect)
