"""What happens to one firing: held out, skipped (and why), or sent, on which channels.
Pure: the same decisions serve the real tick and the dry run."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from engine.decide.keys import in_holdout, message_id
from engine.decide.send_time import next_allowed, zone
from engine.decide.variants import variant_of
from engine.model import SkipReason, Status
from engine.rules.language import Rule
from engine.rules.quiet_hours import QuietHours


@dataclass(frozen=True)
class Candidate:
    """A user for whom a rule fires, as the evaluator found them."""

    user: dict[str, Any]
    anchor_at: datetime
    anchor_event_id: int | None
    anchor_properties: dict[str, Any]
    suppressed: bool
    suppression_reason: str | None = None  # "unsubscribed" or "bounced" when suppressed
    subject: str = ""  # the ledger key's subject; "" means the user
    occurrence: str = ""

    @property
    def user_id(self) -> str:
        return str(self.user["id"])

    @property
    def counted_against(self) -> str:
        return self.subject or self.user_id


@dataclass(frozen=True)
class Planned:
    """One ledger row to write (or, in a dry run, to show)."""

    rule_id: str
    user_id: str
    status: Status
    reason: str | None
    subject: str
    occurrence: str
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
    webhook_template: str | None = None  # the body of a webhook row, queued with `send_at`
    variant: str | None = None  # which of the rule's variants; None: no variants, or held out

    @property
    def sends_webhook(self) -> bool:
        return self.status is Status.PENDING and self.webhook_template is not None

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
    held_out = in_holdout(rule, candidate.counted_against)
    # The held out get no message, so no variant: the variants compare among the treated.
    variant = None if held_out else variant_of(rule, candidate.counted_against)
    guide = rule.send.guide_for(variant) if not held_out else None
    ttl = rule.send.guide_ttl or guide_ttl
    status, reason = _email_status(rule, candidate, held_out)
    sends = status is Status.PENDING
    mails = sends and rule.send.webhook is None
    quiet = quiet_hours if rule.quiet_hours is None else (rule.quiet_hours or None)
    webhook = rule.send.webhook
    # Quiet hours are the recipient's: a webhook goes to a system, at once.
    send_at = (
        now
        if webhook is not None
        else next_allowed(now, quiet, zone(candidate.user.get("timezone"), default_timezone))
    )
    return Planned(
        rule_id=rule.id,
        user_id=user_id,
        status=status,
        reason=reason,
        subject=candidate.counted_against,
        occurrence=candidate.occurrence,
        anchor_at=candidate.anchor_at,
        anchor_event_id=candidate.anchor_event_id,
        fire_at=candidate.anchor_at + rule.when.after,
        send_at=send_at if sends else None,
        holdout=held_out,
        email_template=rule.send.email_for(variant),
        email_to=candidate.user.get("email") if mails else None,
        message_id=message_id(rule.id, user_id, domain, candidate.occurrence) if mails else None,
        guide_id=guide,
        guide_expires_at=now + ttl if guide else None,
        candidate=candidate,
        guide_params=dict(rule.send.guide_params) if guide else {},
        webhook_template=webhook.body if webhook is not None else None,
        variant=variant,
    )


def _email_status(rule: Rule, candidate: Candidate, held_out: bool) -> tuple[Status, str | None]:
    if held_out:
        return Status.HELD_OUT, None
    if rule.send.webhook is not None:
        # To a system, not to the user: an unsubscribe or a missing address does not apply.
        return Status.PENDING, None
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
    return rule.when.anchor_name
