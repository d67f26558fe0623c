"""Incremental evaluation: the change log that triggers write, and each rule's marks.

`changes` records, in commit order, every user or account row written, every event moved or
deleted and every ledger row deleted: whatever can make a rule fire for someone it did not
fire for before, whoever wrote it (ingestion, an operator's SQL, a bulk load). New events need
no row here: their ids already come in ingestion order. `evaluation_marks` keeps, per rule,
when it was last evaluated, which definition, and how far into `events` and `changes`.

SQLite's `events` is rebuilt with AUTOINCREMENT, and `changes` has it, so that no id is
ever handed out twice (a reused id would hide below a watermark).

Triggers, not code in the ingestion path, so that no writer can forget one. PostgreSQL's are
statement-level with transition tables (one INSERT ... SELECT per statement, not a function
call per row); SQLite has only row triggers. A later `batch_alter_table` on SQLite recreates
its table and drops that table's triggers: such a migration must create them again
(`create_triggers`).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# A user row counts as changed when anything a rule can read changed: not `updated_at`,
# which every identify rewrites even when it repeats what is stored.
_USER_COLUMNS = (
    "id",
    "email",
    "persona",
    "signup_source",
    "signed_up_at",
    "timezone",
    "account_id",
    "invited_by",
    "traits",
)
_ACCOUNT_OF_SUBJECT = (
    "CASE WHEN substr({row}.subject, 1, 8) = 'account:' THEN substr({row}.subject, 9) END"
)


def _differs(old: str, new: str, dialect: str) -> str:
    # SQLite's IS NOT and PostgreSQL's IS DISTINCT FROM both treat NULLs as values. JSON
    # compares as text on SQLite and as jsonb on PostgreSQL: either way equal documents are equal.
    operator = "IS NOT" if dialect == "sqlite" else "IS DISTINCT FROM"
    return " OR ".join(f"{old}.{c} {operator} {new}.{c}" for c in _USER_COLUMNS)


# What each trigger logs: (table, event, rows logged as SELECT lists over OLD/NEW).
_SQLITE_TRIGGERS = {
    "users_insert": ("users", "INSERT", None, ["NEW.id, NULL"]),
    # The old account too: the members it loses change its creation time and its events.
    "users_update": (
        "users",
        "UPDATE",
        _differs("OLD", "NEW", "sqlite"),
        ["NEW.id, OLD.account_id", "OLD.id, NULL"],
    ),
    "users_delete": ("users", "DELETE", None, ["OLD.id, OLD.account_id"]),
    "accounts_insert": ("accounts", "INSERT", None, ["NULL, NEW.id"]),
    "accounts_update": ("accounts", "UPDATE", "OLD.traits IS NOT NEW.traits", ["NULL, NEW.id"]),
    "accounts_delete": ("accounts", "DELETE", None, ["NULL, OLD.id"]),
    "events_update": ("events", "UPDATE", None, ["OLD.user_id, NULL", "NEW.user_id, NULL"]),
    "events_delete": ("events", "DELETE", None, ["OLD.user_id, NULL"]),
    "deliveries_delete": (
        "deliveries",
        "DELETE",
        None,
        [f"OLD.user_id, {_ACCOUNT_OF_SUBJECT.format(row='OLD')}"],
    ),
}

# PostgreSQL: (table, event, the SELECT over the transition tables `fresh` / `stale`).
_PG_TRIGGERS = {
    "users_insert": ("users", "INSERT", "SELECT id, NULL FROM fresh"),
    "users_update": (
        "users",
        "UPDATE",
        "SELECT n.id, o.account_id FROM fresh n JOIN stale o ON o.id = n.id"
        f" WHERE {_differs('o', 'n', 'postgresql')}",
    ),
    "users_delete": ("users", "DELETE", "SELECT id, account_id FROM stale"),
    "accounts_insert": ("accounts", "INSERT", "SELECT NULL, id FROM fresh"),
    "accounts_update": (
        "accounts",
        "UPDATE",
        "SELECT NULL, n.id FROM fresh n JOIN stale o ON o.id = n.id"
        " WHERE o.traits IS DISTINCT FROM n.traits",
    ),
    "accounts_delete": ("accounts", "DELETE", "SELECT NULL, id FROM stale"),
    "events_update": (
        "events",
        "UPDATE",
        "SELECT user_id, NULL FROM stale UNION SELECT user_id, NULL FROM fresh",
    ),
    "events_delete": ("events", "DELETE", "SELECT DISTINCT user_id, NULL FROM stale"),
    "deliveries_delete": (
        "deliveries",
        "DELETE",
        f"SELECT DISTINCT user_id, {_ACCOUNT_OF_SUBJECT.format(row='stale')} FROM stale",
    ),
}


def create_triggers(dialect: str) -> None:
    if dialect == "sqlite":
        for name, (table, event, when, rows) in _SQLITE_TRIGGERS.items():
            condition = f" WHEN {when}" if when else ""
            body = " ".join(
                f"INSERT INTO changes (user_id, account_id) SELECT {row};" for row in rows
            )
            op.execute(
                f"CREATE TRIGGER changes_{name} AFTER {event} ON {table}"
                f" FOR EACH ROW{condition} BEGIN {body} END"
            )
        return
    for name, (table, event, query) in _PG_TRIGGERS.items():
        op.execute(
            f"CREATE FUNCTION changes_{name}() RETURNS trigger LANGUAGE plpgsql AS $$"
            f" BEGIN INSERT INTO changes (user_id, account_id) {query}; RETURN NULL; END $$"
        )
        tables = {"INSERT": "NEW TABLE AS fresh", "DELETE": "OLD TABLE AS stale"}
        referencing = tables.get(event, "OLD TABLE AS stale NEW TABLE AS fresh")
        op.execute(
            f"CREATE TRIGGER changes_{name} AFTER {event} ON {table}"
            f" REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION changes_{name}()"
        )


def drop_triggers(dialect: str) -> None:
    for name, (table, *_) in _SQLITE_TRIGGERS.items():
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS changes_{name}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS changes_{name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS changes_{name}()")


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "changes",
        sa.Column("seq", big, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("account_id", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_changes")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "evaluation_marks",
        sa.Column("rule_id", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("change_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_evaluation_marks")),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        # A watermark is an id: SQLite must never hand out an id again once the newest
        # event is deleted, which only AUTOINCREMENT promises (PostgreSQL's sequences do).
        with op.batch_alter_table(
            "events", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ):
            pass
    create_triggers(dialect)


def downgrade() -> None:
    drop_triggers(op.get_bind().dialect.name)
    op.drop_table("evaluation_marks")
    op.drop_table("changes")
