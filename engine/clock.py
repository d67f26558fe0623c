"""The clock is read once, at the edge (CLI, daemon), and passed down as `now`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock for tests and replays: it says what it is told."""

    def __init__(self, at: datetime) -> None:
        self.at = ensure_utc(at)

    def now(self) -> datetime:
        return self.at


def ensure_utc(value: datetime) -> datetime:
    """Naive datetimes are taken as UTC; aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant (`2026-11-23T10:00:00Z`, or naive as UTC)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        return ensure_utc(datetime.fromisoformat(value))
    except ValueError as exc:
        raise ValueError(f"not an ISO 8601 time: {text!r}") from exc


def isoformat(value: datetime | None) -> str | None:
    """UTC ISO 8601 with a `Z`, the form every JSON output uses."""
    if value is None:
        return None
    return ensure_utc(value).isoformat().replace("+00:00", "Z")
