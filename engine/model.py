"""Plain data the engine passes around: users, events, statuses. No SQL, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

SIGNED_UP = "signed_up"  # the anchor name for a user's signup time; never an event name
ACCOUNT_CREATED = "account_created"  # the anchor name for the account's first member's signup
# The engine's own events for tracked emails (mail.tracking): what opens and clicks are
# recorded as, with rule_id and message_id in their properties.
EMAIL_OPENED = "email_opened"
EMAIL_CLICKED = "email_clicked"
ACTIVATED = "activated"  # rule files' name for the first `reports.activation_event`
# A user's stored fields, in the order of the users table.
USER_FIELDS = (
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


class Status(StrEnum):
    """A ledger row's status. For rules that send an email it is the email's state;
    a guide-only row is `sent` as soon as its flag is written (same transaction)."""

    PENDING = "pending"
    CLAIMED = "claimed"  # reserved by a dispatcher, not yet handed to the mail server
    SENDING = "sending"  # being handed over: after a crash here, the server may have it
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    HELD_OUT = "held_out"
    SKIPPED = "skipped"


class SkipReason(StrEnum):
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    NO_EMAIL = "no_email"
    FREQUENCY_CAP = "frequency_cap"


# Email rows that count against a user's frequency cap: queued, in flight or delivered.
EMAIL_COUNTED = ("pending", "claimed", "sending", "retrying", "sent", "unknown")


@dataclass(frozen=True, kw_only=True)
class UserColumns:
    """A user's stored columns besides the id and the traits. In an identify (`UserUpsert`),
    None means "keep the stored value"; in a stored `User`, it means "not known"."""

    email: str | None = None
    persona: str | None = None
    signup_source: str | None = None
    signed_up_at: datetime | None = None
    timezone: str | None = None
    account_id: str | None = None
    invited_by: str | None = None


@dataclass(frozen=True)
class User(UserColumns):
    id: str
    traits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    user_id: str
    name: str
    occurred_at: datetime
    properties: dict[str, Any] = field(default_factory=dict)
    id: int = 0  # store order: breaks ties between events at the same instant


@dataclass(frozen=True)
class Delivered:
    """A ledger row as the reference evaluator reads it: which rule fired, for whom, counted
    against which subject (the user, or the account) and occurrence, and when."""

    rule_id: str
    user_id: str
    subject: str
    occurrence: str
    created_at: datetime


@dataclass(frozen=True)
class UserState:
    """Everything the reference evaluator needs to judge one user."""

    user: User
    events: tuple[Event, ...] = ()
    delivered_rules: frozenset[str] = frozenset()
    suppressed: bool = False
    delivered: tuple[Delivered, ...] = ()


@dataclass(frozen=True)
class World:
    """The whole population the reference evaluator judges a rule over: the users' states,
    the accounts' traits and the ledger (account rules read other members)."""

    states: tuple[UserState, ...]
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: tuple[Delivered, ...] = ()


@dataclass(frozen=True)
class Due:
    """A claimed email delivery with what rendering it needs."""

    id: int
    rule_id: str
    user: dict[str, Any]
    email_template: str
    email_to: str
    message_id: str
    anchor_at: datetime
    anchor_properties: dict[str, Any]
    guide_id: str | None
    guide_expires_at: datetime | None
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class WebhookDue:
    """A claimed webhook delivery with what rendering and signing it needs: the ledger key
    (rule, subject, occurrence) names the message to its receiver."""

    id: int
    rule_id: str
    subject: str
    occurrence: str
    user: dict[str, Any]
    body_template: str
    anchor_at: datetime
    anchor_properties: dict[str, Any]
    guide_id: str | None
    guide_expires_at: datetime | None
    attempts: int
    created_at: datetime
