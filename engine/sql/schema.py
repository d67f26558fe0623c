"""The engine's tables (SQLAlchemy Core). The Alembic migrations create exactly these;
a test compares the two."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC on every database; always aware UTC in Python. SQLite compares
    these as text, which is correct because the stored format is fixed-width."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the engine works in aware UTC")
        if value.tzinfo is not UTC:  # the common case skips a conversion (hot in ticks)
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


JsonDoc = JSON().with_variant(JSONB(), "postgresql")
Id = String(255)
# SQLite only makes INTEGER PRIMARY KEY an alias of its rowid; PostgreSQL wants 64 bits.
BigId = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("email", String(320)),
    Column("persona", String(64)),
    Column("signup_source", String(64)),
    Column("signed_up_at", UTCDateTime()),
    Column("timezone", String(64)),
    Column("account_id", Id),
    Column("invited_by", Id),
    Column("traits", JsonDoc, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "signed_up_at"),
    Index(None, "account_id"),
    Index(None, "email"),  # the console finds a user by email
)

events = Table(
    "events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", Id, nullable=False),
    Column("name", String(255), nullable=False),
    Column("occurred_at", UTCDateTime(), nullable=False),
    Column("properties", JsonDoc, nullable=False),
    Column("message_id", String(255)),
    Column("received_at", UTCDateTime(), nullable=False),
    UniqueConstraint("message_id"),
    # Anchor windows scan (name, occurred_at); per-user checks probe (user_id, name, occurred_at).
    Index(None, "name", "occurred_at"),
    Index(None, "user_id", "name", "occurred_at"),
    # Ids are the ingestion order incremental evaluation reads: never handed out twice.
    sqlite_autoincrement=True,
)


def _recipient(context: Any) -> Any:
    """A row written without a subject counts against its recipient, as every v1 row does."""
    return context.get_current_parameters()["user_id"]


deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("rule_id", String(255), nullable=False),
    Column("user_id", Id, nullable=False),  # the recipient
    # Who the firing counts against: the user (`once_per: user | occurrence`), or the account
    # (`account:<id>`, or `user:<id>` for a user without one); and which of its firings:
    # '' for a rule's first (every v1 row), `event:<id>` / `key:<value>` for an occurrence,
    # `#2`, `#3` ... for the repeats of `repeat_after`.
    Column("subject", Id, nullable=False, default=_recipient),
    Column("occurrence", String(255), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("email_template", String(255)),
    Column("email_to", String(320)),
    # A webhook row's body template (migration 0008): its own queue, apart from the emails.
    Column("webhook_template", String(255)),
    Column("guide_id", String(255)),
    Column("anchor_at", UTCDateTime(), nullable=False),
    Column("anchor_event_id", BigId),
    Column("fire_at", UTCDateTime(), nullable=False),
    Column("send_at", UTCDateTime()),
    Column("holdout", Boolean, nullable=False),
    Column("message_id", String(255)),
    # Which of the rule's variants the row sent (migration 0010); NULL: no variants, or held out.
    Column("variant", String(64)),
    Column("reply", Text),  # the mail server's last reply
    Column("attempts", Integer, nullable=False, default=0),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("sent_at", UTCDateTime()),
    # The exactly-once guarantee: a rule fires at most once per subject and occurrence,
    # whoever inserts (for a v1 rule: once per user).
    UniqueConstraint("rule_id", "subject", "occurrence"),
    Index(None, "rule_id", "user_id"),
    Index(None, "status", "send_at"),
    Index(None, "user_id"),
    # The console's per-rule counts by status over the last day, week and all time.
    Index(None, "rule_id", "status", "created_at"),
)

guide_flags = Table(
    "guide_flags",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", BigId, ForeignKey("deliveries.id"), nullable=False),
    Column("user_id", Id, nullable=False),
    Column("guide_id", String(255), nullable=False),
    Column("rule_id", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("set_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime()),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("params", JsonDoc),  # the rule's send.guide_params, as the frontend reads them
    UniqueConstraint("delivery_id"),
    Index(None, "user_id", "status"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", Id),
    Column("email", String(320)),
    Column("reason", String(32), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("user_id", "reason"),
    UniqueConstraint("email", "reason"),
    Index(None, "email"),
)

# Group calls: an account's (workspace's) traits, merged like a user's; users point here by
# `users.account_id` (no foreign key: a user may name an account before its group call).
accounts = Table(
    "accounts",
    metadata,
    Column("id", Id, primary_key=True),
    Column("traits", JsonDoc, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# Which `lifecycle run` replica evaluates a rule, until when. Replicas on one PostgreSQL
# database each take the leases that are free or expired; a dead replica's rules are taken
# over once its leases run out. The ledger's unique key keeps deliveries exactly-once
# regardless; the lease keeps two replicas from doing the same evaluation work.
rule_leases = Table(
    "rule_leases",
    metadata,
    Column("rule_id", Id, primary_key=True),
    Column("holder", String(255), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

# What can make a rule fire for someone it did not fire for before, in commit order: the
# triggers of migration 0007 write a row for every user or account row that changed, every
# event moved or deleted and every ledger row deleted (`user_id`, and the account it left or
# changed). New events are not logged: their ids are the ingestion order already.
changes = Table(
    "changes",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("user_id", Id),
    Column("account_id", Id),
    sqlite_autoincrement=True,
)

# Per rule, the last evaluation that incremental evaluation continues from: its `now`, the
# rule's definition then, and how far into `events` and `changes` it had read.
evaluation_marks = Table(
    "evaluation_marks",
    metadata,
    Column("rule_id", Id, primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("evaluated_at", UTCDateTime(), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("change_seq", BigInteger, nullable=False),
)

# Every operator action in the web console (and every login to it): who, what, when.
audit = Table(
    "audit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(255)),
    Column("detail", Text),
    Index(None, "at"),
)
