"""The decisions of `engine.decide`, as SQL: one `INSERT INTO deliveries ... SELECT` per rule.

A tick writes most ledger rows without reading them into Python: the holdout bucket, the
email status and its skip reason, the Message-ID and the guide's expiry are computed by the
database from the same inputs `decide()` takes, and must give the very same row (the dry run
still goes through `decide()`, and tests hold the two to each other).

What SQL cannot decide stays in Python: users whom the daily cap could skip, and those whose
timezone zoneinfo does not list when quiet hours apply (engine/sql/send_times.py). `in_python`
draws that line. Pure: builds statements, never runs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    LargeBinary,
    String,
    case,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from engine.decide.caps import WINDOW
from engine.decide.keys import HOLDOUT_KEY_BYTES
from engine.decide.variants import boundaries, variant_salted
from engine.model import EMAIL_COUNTED, SkipReason, Status
from engine.rules.language import Rule, Variants
from engine.rules.quiet_hours import QuietHours
from engine.sql.candidates import compile_rule, firings, suppression
from engine.sql.dialect import HoldoutKey, UserHash, plus
from engine.sql.moments import Moments, moments
from engine.sql.schema import deliveries, guide_flags, users
from engine.sql.send_times import send_at, unlisted_timezone

# The ledger columns `ledger_insert` writes, in its SELECT's order.
LEDGER_COLUMNS = (
    "rule_id",
    "user_id",
    "subject",
    "occurrence",
    "status",
    "reason",
    "email_template",
    "email_to",
    "guide_id",
    "anchor_at",
    "anchor_event_id",
    "fire_at",
    "send_at",
    "holdout",
    "message_id",
    "variant",
    "attempts",
    "created_at",
    "updated_at",
)
FLAG_COLUMNS = (
    "delivery_id",
    "user_id",
    "guide_id",
    "rule_id",
    "params",
    "status",
    "set_at",
    "expires_at",
    "updated_at",
)


@dataclass(frozen=True)
class Settings:
    """The config `decide()` reads, as the runner hands it over."""

    guide_ttl: timedelta
    domain: str
    quiet_hours: QuietHours | None
    daily_cap: int | None
    default_timezone: str


def fits_in_sql(rule: Rule) -> bool:
    """Whether SQL can decide this rule's rows: `after` must be whole seconds (SQLite adds
    it to the anchor's text). Webhook rules are few and their rows unlike the emails' (no
    quiet hours, cap or suppression): decide() writes them."""
    return rule.when.after.microseconds == 0 and rule.send.webhook is None


def in_python(
    rule: Rule, settings: Settings, now: datetime | Moments
) -> ColumnElement[bool] | None:
    """The rule's users that decide() must decide, or None when SQL decides them all."""
    clauses = [may_reach_cap(rule, settings, moments(now))]
    if _quiet_hours(rule, settings) is not None:
        clauses.append(unlisted_timezone())
    found = [clause for clause in clauses if clause is not None]
    return or_(*found) if found else None


def _quiet_hours(rule: Rule, settings: Settings) -> QuietHours | None:
    """The quiet hours of this rule's emails, or None when none apply."""
    quiet = settings.quiet_hours if rule.quiet_hours is None else (rule.quiet_hours or None)
    return quiet if rule.send.email else None


def may_reach_cap(rule: Rule, settings: Settings, at: Moments) -> ColumnElement[bool] | None:
    """Users whom the daily cap could skip on this rule, or None when it can skip nobody.

    The cap counts a user's emails within a day of the new one's `send_at`, which lies in
    [now, now + 1 day): all such emails lie in the window `Runner._cap` fetches. A user with
    fewer counted emails than the cap in that whole window cannot be capped, whatever the
    exact times; the others go through `FrequencyCap`, which decides exactly."""
    if settings.daily_cap is None or rule.send.email is None or not rule.frequency_cap:
        return None
    counted = (
        select(func.count())
        .select_from(deliveries)
        .where(
            deliveries.c.user_id == users.c.id,
            deliveries.c.status.in_(EMAIL_COUNTED),
            deliveries.c.email_template.is_not(None),
            deliveries.c.send_at >= at.at(-WINDOW),
            deliveries.c.send_at <= at.at(2 * WINDOW),
        )
        .scalar_subquery()
    )
    return counted >= settings.daily_cap


def holdout_threshold(holdout: float) -> int:
    """The smallest holdout key (the first 8 bytes of the hash, big-endian) that is NOT held
    out at this percentage. `decide.holdout_bucket` is monotonic in the key, so the held-out
    keys are exactly those below it, and SQL compares keys instead of recomputing floats."""
    space = 1 << (8 * HOLDOUT_KEY_BYTES)
    if holdout <= 0:
        return 0
    low, high = 0, space  # bucket(low) < holdout; the answer lies in (low, high]
    if not _held(0, holdout, space):
        return 0
    while high - low > 1:
        middle = (low + high) // 2
        if _held(middle, holdout, space):
            low = middle
        else:
            high = middle
    return high


def _held(key: int, holdout: float, space: int) -> bool:
    return key / space * 100 < holdout  # the very arithmetic of decide.holdout_bucket


def ledger_insert(
    rule: Rule,
    now: datetime | Moments,
    settings: Settings,
    where: tuple[ColumnElement[bool], ...] = (),
    scope: Sequence[str] | None = None,
) -> Select[Any]:
    """The SELECT of the ledger rows a tick writes for `rule` (columns `LEDGER_COLUMNS`):
    the firings of `engine.sql.candidates` (in `scope`, when given), with `decide()` written
    in SQL."""
    at = moments(now)
    compiled = compile_rule(rule, at, scope)
    anchor_event_id = null() if compiled.anchor is None else compiled.anchor.c.id
    # Materialized: each decision below reads the hash and the suppression probes several
    # times, and both databases would otherwise inline (and recompute) them at every read.
    c = (
        firings(
            compiled,
            [
                users.c.id,
                users.c.email,
                users.c.timezone,
                compiled.anchor_at.label("anchor_at"),
                anchor_event_id.label("anchor_event_id"),
                *compiled.key_columns(),
                # A guide-only row is the same whoever unsubscribed: no probes for it.
                (suppression() if rule.send.email else null()).label("suppression"),
                _held_out(rule, compiled.subject).label("held_out"),
            ],
            where,
        )
        .cte("c")
        .prefix_with("MATERIALIZED")
    ).c
    status, reason = _email_status(rule, c.held_out, c.suppression, c.email)
    sends = status == Status.PENDING.value
    variant = _variant(rule, c.subject)
    chosen = case((c.held_out, null()), else_=variant)
    return select(
        _text(rule.id),
        c.id,
        c.subject,
        c.occurrence,
        status,
        reason,
        case(
            (sends, _by_variant(rule.send.email_variants, variant, rule.send.email)), else_=null()
        ),
        case((sends, c.email), else_=null()),
        (
            case((c.held_out, null()), else_=_by_variant(rule.send.guide_variants, variant, guide))
            if (guide := rule.send.guide)
            else null()
        ),
        c.anchor_at,
        null() if compiled.anchor is None else c.anchor_event_id,  # an untyped NULL
        plus(c.anchor_at, rule.when.after),
        case((sends, _send_at(rule, settings, at, c.timezone)), else_=null()),
        c.held_out,
        case((sends, _message_id(rule, c.id, c.occurrence, settings.domain)), else_=null()),
        chosen if rule.send.variants is not None else null(),
        literal(0),
        at.at(),
        at.at(),
    ).where(true())  # SQLite parses ON CONFLICT after INSERT ... SELECT only after a WHERE


def _email_status(
    rule: Rule,
    held_out: ColumnElement[bool],
    suppression: ColumnElement[Any],
    email: ColumnElement[Any],
) -> tuple[ColumnElement[str], ColumnElement[Any]]:
    """`decide._email_status` as two columns: the status and the skip reason."""
    if not rule.send.email:
        status = case((held_out, Status.HELD_OUT.value), else_=Status.SENT.value)
        return status, null()
    suppressed = suppression.is_not(None)
    no_email = or_(email.is_(None), email == "")
    status = case(
        (held_out, Status.HELD_OUT.value),
        (or_(suppressed, no_email), Status.SKIPPED.value),
        else_=Status.PENDING.value,
    )
    reason = case(
        (held_out, null()),
        # decide() reads an empty suppression reason as `unsubscribed`
        (suppressed, func.coalesce(func.nullif(suppression, ""), SkipReason.UNSUBSCRIBED.value)),
        (no_email, SkipReason.NO_EMAIL.value),
        else_=null(),
    )
    return status, reason


def flags_select(
    rule: Rule, now: datetime, settings: Settings, written: ColumnElement[bool]
) -> Select[Any]:
    """The guide flags of the ledger rows `written` selects (columns `FLAG_COLUMNS`)."""
    ttl = rule.send.guide_ttl or settings.guide_ttl
    params = literal(dict(rule.send.guide_params), guide_flags.c.params.type)
    return select(
        deliveries.c.id,
        deliveries.c.user_id,
        deliveries.c.guide_id,
        deliveries.c.rule_id,
        params,
        literal("active"),
        _time(now),
        _time(now + ttl),
        _time(now),
    ).where(written, deliveries.c.guide_id.is_not(None))


def _send_at(
    rule: Rule, settings: Settings, at: Moments, timezone: ColumnElement[Any]
) -> ColumnElement[Any]:
    quiet = _quiet_hours(rule, settings)
    return at.at() if quiet is None else send_at(quiet, settings.default_timezone, timezone, at)


def _text(value: str | None) -> ColumnElement[Any]:
    return null() if value is None else literal(value, String())


def _time(moment: datetime) -> ColumnElement[Any]:
    return literal(moment, deliveries.c.created_at.type)


def _held_out(rule: Rule, subject: ColumnElement[Any]) -> ColumnElement[bool]:
    threshold = holdout_threshold(rule.holdout)
    if threshold == 0:
        return false()
    if threshold >= 1 << (8 * HOLDOUT_KEY_BYTES):
        return true()
    limit = threshold.to_bytes(HOLDOUT_KEY_BYTES, "big")
    return HoldoutKey(rule.id, subject) < literal(limit, LargeBinary())


def _variant(rule: Rule, subject: ColumnElement[Any]) -> ColumnElement[Any]:
    """`decide.variant_of` in SQL: the variant hash compared against the boundaries of the
    split, as `holdout_threshold` turns a percentage into the first key outside it."""
    variants = rule.send.variants
    if variants is None:
        return null()
    bounds = boundaries(variants)
    key = HoldoutKey(variant_salted(rule.id), subject)
    whens: list[tuple[ColumnElement[bool], ColumnElement[Any]]] = []
    for name, upper in bounds[:-1]:
        threshold = holdout_threshold(upper)
        if threshold == 0:
            continue  # no key lies below it: the variant gets nobody
        if threshold >= 1 << (8 * HOLDOUT_KEY_BYTES):
            return case(*whens, else_=_text(name)) if whens else _text(name)
        limit = threshold.to_bytes(HOLDOUT_KEY_BYTES, "big")
        whens.append((key < literal(limit, LargeBinary()), _text(name)))
    last = _text(bounds[-1][0])
    return case(*whens, else_=last) if whens else last


def _by_variant(
    variants: Variants | None, variant: ColumnElement[Any], plain: object
) -> ColumnElement[Any]:
    """The channel's message for the row's variant (a template or a guide id)."""
    if variants is None:
        return _text(plain if isinstance(plain, str) else None)
    return case(
        *((variant == name, _text(value)) for name, value in variants.variants.items()),
        else_=null(),
    )


def _message_id(
    rule: Rule, user_id: ColumnElement[Any], occurrence: ColumnElement[Any], domain: str
) -> ColumnElement[Any]:
    """`decide.message_id` in SQL."""
    head = literal(f"<{rule.id}.", String()) + UserHash(user_id)
    end = literal(f"@{domain}>", String())
    if rule.once_per != "occurrence" and rule.repeat_after is None:
        return head + end  # no occurrence: the v1 Message-ID
    tail = case(
        (occurrence == "", literal("", String())),
        else_=literal(".", String()) + UserHash(occurrence),
    )
    return head + tail + end
