"""Guide flags carry the rule's guide parameters for the frontend.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
    with op.batch_alter_table("guide_flags") as batch:
        batch.add_column(sa.Column("params", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("guide_flags") as batch:
        batch.drop_column("params")
