"""The ledger's key covers the scope and the occurrence (rule language v2).

A v1 row fired a rule once for its user: its subject is that user and its occurrence is ''.
Account rules count a firing against the account (`account:<id>`), occurrence rules against
one occurrence of the anchor event, repeating rules number their firings: the unique key
becomes (rule_id, subject, occurrence), and (rule_id, user_id) keeps a plain index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("subject", sa.String(length=255), nullable=True))
        batch.add_column(
            sa.Column("occurrence", sa.String(length=255), nullable=False, server_default="")
        )
    op.execute("UPDATE deliveries SET subject = user_id")
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("subject", existing_type=sa.String(length=255), nullable=False)
        batch.drop_constraint("uq_deliveries_rule_id_user_id", type_="unique")
        batch.create_unique_constraint(
            "uq_deliveries_rule_id_subject_occurrence", ["rule_id", "subject", "occurrence"]
        )
        batch.create_index("ix_deliveries_rule_id_user_id", ["rule_id", "user_id"])


def downgrade() -> None:
    # Only v1 rows fit the old key: a v2 rule's later firings would collide with its first.
    op.execute(
        "DELETE FROM guide_flags WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE occurrence <> '' OR subject <> user_id)"
    )
    op.execute("DELETE FROM deliveries WHERE occurrence <> '' OR subject <> user_id")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_rule_id_user_id")
        batch.drop_constraint("uq_deliveries_rule_id_subject_occurrence", type_="unique")
        batch.create_unique_constraint("uq_deliveries_rule_id_user_id", ["rule_id", "user_id"])
        batch.drop_column("occurrence")
        batch.drop_column("subject")
