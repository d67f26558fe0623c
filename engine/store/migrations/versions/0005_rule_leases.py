"""Rule leases: which daemon replica evaluates a rule, until when.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_leases",
        sa.Column("rule_id", sa.String(length=255), nullable=False),
        sa.Column("holder", sa.String(length=255), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_rule_leases")),
    )


def downgrade() -> None:
    op.drop_table("rule_leases")
