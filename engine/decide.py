"""What happens to one firing: held out, skipped (and why), or sent, on which channels.
Pure: the same decisions serve the real tick and the dry run."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from engine.model import SIGNED_UP, SkipReason, Status
from engine.rules import Rule
from engine.timing import QuietHours, next_allowed, zone

HOLDOUT_KEY_BYTES = 8
_HASH_SPACE = 1 << (8 * HOLDOUT_KEY_BYTES)


def holdout_key(rule_id: str, user_id: str) -> bytes:
    """The bytes of the hash of (rule, user) that place the user in or out of the holdout
    (engine/decide_sql.py compares them in SQL)."""
    return hashlib.sha256(f"{rule_id}\x00{user_id}".encode()).digest()[:HOLDOUT_KEY_BYTES]


def holdout_bucket(rule_id: str, user_id: str) -> float:
    """A stable number in [0, 100) for (rule, user): the same user is always in or out."""
    return int.from_bytes(holdout_key(rule_id, user_id), "big") / _HASH_SPACE * 100


def in_holdout(rule: Rule, user_id: str) -> bool:
    return rule.holdout > 0 and holdout_bucket(rule.id, user_id) < rule.holdout


def message_id(rule_id: str, user_id: str, domain: str) -> str:
    """Derived from the ledger key, so a re-send of the same row carries the same id."""
    return f"<{rule_id}.{user_hash(user_id)}@{domain}>"


def user_hash(user_id: str) -> str:
    """The user's part of a Message-ID: no user id in a header, and the same every time."""
    return hashlib.sha256(user_id.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Candidate:
    """A user for whom a rule fires, as the evaluator found them."""

    user: dict[str, Any]
    anchor_at: datetime
    anchor_event_id: int | None
    anchor_properties: dict[str, Any]
    suppressed: bool
    suppression_reason: str | None = None  # "unsubscribed" or "bounced" when suppressed

    @property
    def user_id(self) -> str:
        return str(self.user["id"])


@dataclass(frozen=True)
class Planned:
    """One ledger row to write (or, in a dry run, to show)."""

    rule_id: str
    user_id: str
    status: Status
    reason: str | None
    anchor_at: datetime
    anchor_event_id: int | None
    fire_at: datetime
    send_at: datetime | None
    holdout: bool
    email_template: str | None
    email_to: str | None
    message_id: str | None
    guide_id: str | None
    guide_expires_at: datetime | None
    candidate: Candidate = field(repr=False, compare=False)
    guide_params: dict[str, Any] = field(default_factory=dict)

    @property
    def sends_email(self) -> bool:
        return self.status in (Status.PENDING,) and self.email_template is not None

    @property
    def sets_guide(self) -> bool:
        return self.guide_id is not None


def decide(
    rule: Rule,
    candidate: Candidate,
    now: datetime,
    *,
    guide_ttl: timedelta,
    domain: str,
    quiet_hours: QuietHours | None = None,
    default_timezone: str = "UTC",
) -> Planned:
    user_id = candidate.user_id
    held_out = in_holdout(rule, user_id)
    guide = rule.send.guide if not held_out else None
    ttl = rule.send.guide_ttl or guide_ttl
    status, reason = _email_status(rule, candidate, held_out)
    sends = status is Status.PENDING
    quiet = quiet_hours if rule.quiet_hours is None else (rule.quiet_hours or None)
    send_at = next_allowed(now, quiet, zone(candidate.user.get("timezone"), default_timezone))
    return Planned(
        rule_id=rule.id,
        user_id=user_id,
        status=status,
        reason=reason,
        anchor_at=candidate.anchor_at,
        anchor_event_id=candidate.anchor_event_id,
        fire_at=candidate.anchor_at + rule.when.after,
        send_at=send_at if sends else None,
        holdout=held_out,
        email_template=rule.send.email,
        email_to=candidate.user.get("email") if sends else None,
        message_id=message_id(rule.id, user_id, domain) if sends else None,
        guide_id=guide,
        guide_expires_at=now + ttl if guide else None,
        candidate=candidate,
        guide_params=dict(rule.send.guide_params) if guide else {},
    )


def _email_status(rule: Rule, candidate: Candidate, held_out: bool) -> tuple[Status, str | None]:
    if held_out:
        return Status.HELD_OUT, None
    if not rule.send.email:
        return Status.SENT, None  # guide only: the flag is written with the row
    if candidate.suppressed:
        return Status.SKIPPED, candidate.suppression_reason or SkipReason.UNSUBSCRIBED.value
    if not candidate.user.get("email"):
        return Status.SKIPPED, SkipReason.NO_EMAIL.value
    return Status.PENDING, None


def capped(planned: Planned) -> Planned:
    """The same row with its email skipped for the frequency cap (the guide still applies)."""
    return replace(
        planned,
        status=Status.SKIPPED,
        reason=SkipReason.FREQUENCY_CAP.value,
        send_at=None,
        email_to=None,
        message_id=None,
    )


def anchor_name(rule: Rule) -> str:
    return SIGNED_UP if rule.when.anchored_on_signup else rule.when.since
