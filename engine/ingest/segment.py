"""Segment-spec messages (`identify`, `track`, `page`, `screen`, `group`, `alias`) parsed into
store records. The file ingester and the HTTP API share this, so both accept and reject exactly
the same input. Pure: no I/O, and the time of receipt is passed in."""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.clock import ensure_utc, parse_instant
from engine.config import IngestConfig
from engine.sql.schema import events, users
from engine.store import AccountUpsert, Alias, EventRecord, UserUpsert

SUPPORTED = ("identify", "track", "page", "screen", "group", "alias")
MAX_MESSAGE_BYTES = 32 * 1024  # Segment's limit per message
# Fields a client sets per attempt: a retried message without a messageId must hash the same.
VOLATILE = frozenset({"sentAt", "writeKey"})
ID_LENGTH = 255  # every id column is String(255)
COLUMNS = ("persona", "signup_source", "email", "timezone", "account_id", "invited_by")
# The column widths, from the schema: a longer value would fail the insert on PostgreSQL.
LENGTHS: dict[str, int] = {c: getattr(users.c[c].type, "length", None) or 0 for c in COLUMNS}
NAME_LENGTH: int = getattr(events.c.name.type, "length", None) or 0
# An escaped NUL in serialized JSON, not preceded by an escaping backslash of its own.
NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
# A longer integer is not even converted: int() refuses 4,300 digits and more (a ValueError
# that used to answer 500), and no double holds 310 digits anyway.
MAX_INTEGER_DIGITS = 400
SAFE_INTEGER_TEXT = 308  # an integer of 308 digits or fewer always fits a double
SHOWN_DIGITS = 20  # of a number out of range, in the error
# A messageId longer than the column is stored as a prefix and the hash of the whole id, so
# that two ids differing past the width never become one (and a retry still hashes the same).
LONG_ID_MARK = "~sha256:"
LONG_ID_PREFIX = ID_LENGTH - len(LONG_ID_MARK) - 64


class SegmentError(ValueError):
    """A message that cannot be stored; the text names the field at fault."""


@dataclass(frozen=True)
class OutOfRange:
    """A number no double holds (PostgreSQL's cast to compare it in a rule would fail) or one
    JSON does not have (NaN, Infinity). `decode_json(..., mark_numbers=True)` leaves this in
    its place, so that it fails the one message holding it, with the field named, rather than
    the whole request."""

    problem: str


class _Unencodable(Exception):
    """Raised out of the encoder by an OutOfRange value."""


def _encodable(value: Any) -> Any:
    if isinstance(value, OutOfRange):
        raise _Unencodable
    return str(value)


# One encoder for every message: json.dumps with options builds a new one per call.
COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_encodable)


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

    @classmethod
    def from_config(cls, ingest: IngestConfig) -> TraitMapping:
        return cls(**ingest.model_dump())


@dataclass(frozen=True)
class Group:
    """A group call: the account's traits, and the user it names joining that account."""

    account: AccountUpsert
    member: UserUpsert | None


Parsed = UserUpsert | EventRecord | Group | Alias


def parse_message(
    message: Any,
    *,
    received_at: datetime,
    mapping: TraitMapping | None = None,
    sent_at: datetime | None = None,
    correct_skew: bool = False,
) -> Parsed:
    """One message -> one record, or SegmentError naming the field at fault.

    With `correct_skew` (messages that just arrived over HTTP), a client timestamp is moved by
    the client's clock error, as Segment does: timestamp + (received_at - sentAt), where sentAt
    is the message's own or else `sent_at` (the batch's)."""
    mapping = mapping or TraitMapping()
    if not isinstance(message, dict):
        raise SegmentError("a message must be a JSON object")
    _check_text(message)
    kind = message.get("type")
    if kind not in SUPPORTED:
        raise SegmentError(f"type: unsupported {kind!r} (supported: {', '.join(SUPPORTED)})")
    if kind == "identify":
        return _identify(_user_id(message, "identify"), message, mapping)
    if kind == "group":
        return _group(message)
    if kind == "alias":
        return _alias(message)
    user_id = _user_id(message, None)
    occurred_at = _occurred_at(message, received_at, sent_at, correct_skew)
    if kind == "track":
        return _track(user_id, message, occurred_at)
    return _view(kind, user_id, message, occurred_at)


def decode_json(text: str | bytes, *, mark_numbers: bool = False) -> Any:
    """json.loads that also refuses what is not JSON but Python accepts (NaN, Infinity) and
    numbers no double holds, which PostgreSQL would refuse later, failing a batch or a rule.
    With `mark_numbers` they are left in place as OutOfRange, for `parse_message` to reject
    the one message holding them; else the whole text is refused."""

    def bad(problem: str) -> OutOfRange:
        if mark_numbers:
            return OutOfRange(problem)
        raise SegmentError(f"invalid JSON: {problem}")

    def constant(name: str) -> Any:
        return bad(f"{name} is not a JSON number")

    def real(number: str) -> Any:
        value = float(number)
        return value if math.isfinite(value) else bad(_out_of_range(number))

    def integer(number: str) -> Any:
        if len(number) <= SAFE_INTEGER_TEXT:  # the common case, at the least cost
            return int(number)
        if len(number) > MAX_INTEGER_DIGITS:
            return bad(_out_of_range(number))
        value = int(number)
        try:
            float(value)
        except OverflowError:
            return bad(_out_of_range(number))
        return value

    try:
        return json.loads(text, parse_constant=constant, parse_float=real, parse_int=integer)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise SegmentError(f"invalid JSON: {exc.msg} ({where})") from None
    except RecursionError:
        raise SegmentError("invalid JSON: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise SegmentError(f"invalid JSON: not UTF-8 ({exc.reason} at byte {exc.start})") from None


def _out_of_range(number: str) -> str:
    shown = number
    if len(number) > SHOWN_DIGITS:  # never echo 5,000 digits back
        digits = sum(c.isdigit() for c in number)
        shown = f"{number[:SHOWN_DIGITS]}... ({digits} digits)"
    limit = "a number must fit a double: up to about 1.8e308 in size"
    return f"the number {shown} is out of range ({limit})"


def _check_text(message: dict[str, Any]) -> None:
    """What no database column can hold fails this message alone, here, rather than the
    whole batch's insert later."""
    try:
        serialized = COMPACT.encode(message)
    except _Unencodable:
        raise SegmentError(number_problem(message) or "message: a number is out of range") from None
    try:
        size = len(serialized.encode())
    except UnicodeEncodeError:
        raise SegmentError("message: contains an unpaired UTF-16 surrogate (not text)") from None
    if size > MAX_MESSAGE_BYTES:
        raise SegmentError(f"message: {size} bytes, over the limit of 32 KB per message")
    if "\\u0000" in serialized and NUL.search(serialized):  # the regex only when it may match
        raise SegmentError("message: contains a NUL character (\\u0000), which is not stored")


def number_problem(fields: dict[str, Any]) -> str | None:
    """`path: problem` for the first OutOfRange among `fields`, or None. A loop, not
    recursion: the value may nest as deep as the JSON parser allowed."""
    pending: list[tuple[str, Any]] = [(str(key), value) for key, value in fields.items()]
    pending.reverse()
    while pending:
        path, value = pending.pop()
        if isinstance(value, OutOfRange):
            return f"{path}: {value.problem}"
        if isinstance(value, dict):
            pending.extend(reversed([(f"{path}.{k}", v) for k, v in value.items()]))
        elif isinstance(value, list):
            pending.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
    return None


# ---- ids -------------------------------------------------------------------------------


def _user_id(message: dict[str, Any], named_only_for: str | None) -> str:
    """The userId; else, unless `named_only_for` names the call that needs a real user, the
    anonymousId (anonymous events are kept under it until an alias re-points them)."""
    user_id = _id(message, "userId", message.get("userId", message.get("user_id")))
    if user_id is not None:
        return user_id
    if named_only_for is not None:
        raise SegmentError(
            f"userId: required for {named_only_for} (an anonymousId alone is not stored)"
        )
    anonymous_id = _id(message, "anonymousId", message.get("anonymousId"))
    if anonymous_id is None:
        raise SegmentError("userId or anonymousId: required")
    return anonymous_id


def _id(message: dict[str, Any], field: str, value: Any) -> str | None:
    """A string or integer id (numbers become strings); None when absent or blank."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise SegmentError(f"{field}: must be a string, got {value!r}")
    text = str(value)
    if len(text) > ID_LENGTH:
        raise SegmentError(f"{field}: longer than {ID_LENGTH} characters")
    return text


# ---- identify, group, alias ------------------------------------------------------------


def _identify(user_id: str, message: dict[str, Any], mapping: TraitMapping) -> UserUpsert:
    context = _object(message, "context")
    # RudderStack's SDKs send identify traits only in context.traits; top-level traits win.
    rest = {**_object(context, "traits", "context.traits"), **_object(message, "traits")}
    columns: dict[str, Any] = {}
    for column in COLUMNS:
        value = _take(rest, getattr(mapping, column))
        columns[column] = _column_text(value, column, f"traits.{column}")
    if columns["timezone"] is None:  # the device's zone, as Segment's and Rudder's SDKs send it
        columns["timezone"] = _column_text(context.get("timezone"), "timezone", "context.timezone")
    locale = context.get("locale")
    if isinstance(locale, str) and locale.strip() and "locale" not in rest:
        rest["locale"] = locale  # no column for it: a trait, as templates and rules read traits
    created = _take(rest, mapping.signed_up_at)
    signed_up_at = _instant(created, "traits.createdAt") if created is not None else None
    return UserUpsert(id=user_id, traits=rest, signed_up_at=signed_up_at, **columns)


def _column_text(value: Any, column: str, field: str) -> str | None:
    """A value for a user column: a string or an integer, within the column's width."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SegmentError(f"{field}: must be a string, got {value!r}")
    text = str(value)
    if len(text) > LENGTHS[column]:
        raise SegmentError(f"{field}: longer than {LENGTHS[column]} characters")
    return text


def _take(traits: dict[str, Any], names: tuple[str, ...]) -> Any:
    found = None
    for name in names:
        if name in traits:
            value = traits.pop(name)
            found = value if found is None else found
    return found


def _group(message: dict[str, Any]) -> Group:
    group_id = _id(message, "groupId", message.get("groupId"))
    if group_id is None:
        raise SegmentError("groupId: required")
    traits = dict(_object(message, "traits"))
    # Only a known user joins the account: an anonymous visitor has no user row to point.
    user_id = _id(message, "userId", message.get("userId", message.get("user_id")))
    member = UserUpsert(id=user_id, traits={}, account_id=group_id) if user_id else None
    return Group(AccountUpsert(id=group_id, traits=traits), member)


def _alias(message: dict[str, Any]) -> Alias:
    previous_id = _id(message, "previousId", message.get("previousId"))
    if previous_id is None:
        raise SegmentError("previousId: required")
    return Alias(previous_id=previous_id, user_id=_user_id(message, "alias"))


# ---- track, page, screen ---------------------------------------------------------------


def _track(user_id: str, message: dict[str, Any], occurred_at: datetime) -> EventRecord:
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise SegmentError("event: required, a non-empty string")
    if len(name.strip()) > NAME_LENGTH:
        raise SegmentError(f"event: longer than {NAME_LENGTH} characters")
    return EventRecord(
        user_id=user_id,
        name=name.strip(),
        occurred_at=occurred_at,
        properties=_object(message, "properties"),
        message_id=_message_id(message),
    )


def _view(kind: str, user_id: str, message: dict[str, Any], occurred_at: datetime) -> EventRecord:
    """A page or screen view is an event named `page` / `screen`; the call's `name` and
    `category` join its properties, so rules can filter on them with `where`."""
    properties = dict(_object(message, "properties"))
    for field in ("name", "category"):
        value = message.get(field)
        if value is None:
            continue
        if not isinstance(value, str):
            raise SegmentError(f"{field}: must be a string, got {value!r}")
        properties[field] = value
    return EventRecord(
        user_id=user_id,
        name=kind,
        occurred_at=occurred_at,
        properties=properties,
        message_id=_message_id(message),
    )


def _object(message: dict[str, Any], field: str, name: str | None = None) -> dict[str, Any]:
    """`message[field]`, an object (absent: empty); `name` is how errors call it."""
    value = message.get(field) or {}
    if not isinstance(value, dict):
        raise SegmentError(f"{name or field}: must be an object")
    return value


# ---- times -----------------------------------------------------------------------------


def _occurred_at(
    message: dict[str, Any],
    received_at: datetime,
    batch_sent_at: datetime | None,
    correct_skew: bool,
) -> datetime:
    raw_time = message.get("timestamp", message.get("originalTimestamp"))
    if raw_time is None:
        return received_at
    occurred_at = _instant(raw_time, "timestamp")
    if not correct_skew:
        return occurred_at
    raw_sent = message.get("sentAt")
    sent_at = _instant(raw_sent, "sentAt") if raw_sent is not None else batch_sent_at
    if sent_at is None:
        return occurred_at
    # The client stamped both times with its own clock: the gap to our clock is its error.
    try:
        return occurred_at + (received_at - sent_at)
    except OverflowError:
        raise SegmentError("timestamp: out of range once corrected by sentAt") from None


def parse_sent_at(value: Any) -> datetime | None:
    """A batch's `sentAt`, for `parse_message(sent_at=...)`."""
    return None if value is None else _instant(value, "sentAt")


def _instant(value: Any, field: str) -> datetime:
    if isinstance(value, OutOfRange):  # a batch's sentAt, outside any message
        raise SegmentError(f"{field}: {value.problem}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise SegmentError(f"{field}: not a time: {value!r}") from None
    if isinstance(value, str):
        try:
            return parse_instant(value)
        except (ValueError, OverflowError):  # OverflowError: year 1 with an offset
            pass
    if isinstance(value, datetime):
        return ensure_utc(value)
    raise SegmentError(f"{field}: not an ISO 8601 time: {value!r}")


def _message_id(message: dict[str, Any]) -> str:
    """The client's messageId; without one, a hash of the message, so that loading the same
    file twice stores its events once. An id longer than the column keeps a prefix and gets
    the hash of the whole id: cutting it would make ids that differ later one (one lost)."""
    given = message.get("messageId")
    if isinstance(given, str) and given:
        if len(given) <= ID_LENGTH:
            return given
        digest = hashlib.sha256(given.encode()).hexdigest()
        return given[:LONG_ID_PREFIX] + LONG_ID_MARK + digest
    stable = {k: v for k, v in message.items() if k not in VOLATILE}
    canonical = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()
