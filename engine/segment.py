"""Segment-spec messages (`identify`, `track`) parsed into store records. The file ingester
and the HTTP API share this, so both accept and reject exactly the same input."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.clock import ensure_utc, parse_instant
from engine.store import EventRecord, UserUpsert

SUPPORTED = ("identify", "track")


class SegmentError(ValueError):
    """A message that cannot be stored; the text names the field at fault."""


@dataclass(frozen=True)
class TraitMapping:
    """Which traits fill the user columns (the first trait present wins)."""

    persona: tuple[str, ...] = ("persona",)
    signup_source: tuple[str, ...] = ("signup_source", "signupSource")
    email: tuple[str, ...] = ("email",)
    timezone: tuple[str, ...] = ("timezone",)
    account_id: tuple[str, ...] = ("account_id", "accountId", "company_id", "groupId")
    invited_by: tuple[str, ...] = ("invited_by", "invitedBy")
    signed_up_at: tuple[str, ...] = ("createdAt", "created_at")


def parse_message(
    message: Any, *, received_at: datetime, mapping: TraitMapping | None = None
) -> UserUpsert | EventRecord:
    mapping = mapping or TraitMapping()
    if not isinstance(message, dict):
        raise SegmentError("a message must be a JSON object")
    kind = message.get("type")
    if kind not in SUPPORTED:
        raise SegmentError(f"type: unsupported {kind!r} (supported: {', '.join(SUPPORTED)})")
    user_id = message.get("userId", message.get("user_id"))
    if user_id is None or (isinstance(user_id, str) and not user_id.strip()):
        raise SegmentError("userId: required (anonymous messages are not supported yet)")
    if not isinstance(user_id, str | int) or isinstance(user_id, bool):
        raise SegmentError(f"userId: must be a string, got {user_id!r}")
    if kind == "identify":
        return _identify(str(user_id), message, mapping)
    return _track(str(user_id), message, received_at)


def _identify(user_id: str, message: dict[str, Any], mapping: TraitMapping) -> UserUpsert:
    traits = message.get("traits") or {}
    if not isinstance(traits, dict):
        raise SegmentError("traits: must be an object")
    rest = dict(traits)
    columns: dict[str, Any] = {}
    for column in ("persona", "signup_source", "email", "timezone", "account_id", "invited_by"):
        value = _take(rest, getattr(mapping, column))
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            raise SegmentError(f"traits.{column}: must be a string, got {value!r}")
        columns[column] = str(value) if value is not None else None
    created = _take(rest, mapping.signed_up_at)
    signed_up_at = _instant(created, "traits.createdAt") if created is not None else None
    return UserUpsert(id=user_id, traits=rest, signed_up_at=signed_up_at, **columns)


def _take(traits: dict[str, Any], names: tuple[str, ...]) -> Any:
    found = None
    for name in names:
        if name in traits:
            value = traits.pop(name)
            found = value if found is None else found
    return found


def _track(user_id: str, message: dict[str, Any], received_at: datetime) -> EventRecord:
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise SegmentError("event: required, a non-empty string")
    properties = message.get("properties") or {}
    if not isinstance(properties, dict):
        raise SegmentError("properties: must be an object")
    raw_time = message.get("timestamp", message.get("originalTimestamp"))
    occurred_at = _instant(raw_time, "timestamp") if raw_time is not None else received_at
    return EventRecord(
        user_id=user_id,
        name=name.strip(),
        occurred_at=occurred_at,
        properties=properties,
        message_id=_message_id(message),
    )


def _instant(value: Any, field: str) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except ValueError:
            pass
    if isinstance(value, datetime):
        return ensure_utc(value)
    raise SegmentError(f"{field}: not an ISO 8601 time: {value!r}")


def _message_id(message: dict[str, Any]) -> str:
    """The client's messageId; without one, a hash of the message, so that loading the same
    file twice stores its events once."""
    given = message.get("messageId")
    if isinstance(given, str) and given:
        return given[:255]
    canonical = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
