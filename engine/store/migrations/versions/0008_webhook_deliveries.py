"""Webhook deliveries: a ledger row whose rule sends a webhook names its body template.

The column tells the two queues apart: the email dispatcher claims rows without one, the
webhook dispatcher rows with one, so that a slow receiver never holds up an email. A plain
ADD COLUMN on both databases: SQLite keeps the table (and the triggers of 0007 on it).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("webhook_template", sa.String(255), nullable=True))


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect != "sqlite":
        op.drop_column("deliveries", "webhook_template")
        return
    # SQLite rebuilds the table to drop a column, and its triggers go with it.
    triggers = importlib.import_module(
        "engine.store.migrations.versions.0007_incremental_evaluation"
    )
    triggers.drop_triggers(dialect)
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("webhook_template")
    triggers.create_triggers(dialect)
