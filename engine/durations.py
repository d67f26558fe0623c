"""Durations as written in rules and config: `30m`, `24h`, `7d`, `1d12h`, `0`."""

from __future__ import annotations

import re
from datetime import timedelta

from engine.errors import DurationError

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+[smhdw])+$")


def parse_duration(value: object) -> timedelta:
    """Parse a duration; raise DurationError with a message a rule author can act on."""
    if isinstance(value, timedelta):
        return value
    if value == "0" or (type(value) is int and value == 0):  # not False, not 0.0
        return timedelta(0)
    if not isinstance(value, str):
        raise DurationError(
            f"duration must be a string such as '30m', '24h' or '7d', got {value!r}"
        )
    text = value.strip().lower()
    if not _WHOLE.match(text):
        raise DurationError(
            f"bad duration {value!r}: use a number and a unit (s, m, h, d, w), "
            "e.g. '30m', '24h', '7d' or '1d12h'"
        )
    total = timedelta(0)
    for amount, unit in _PART.findall(text):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    return total


def format_duration(delta: timedelta) -> str:
    """The shortest exact spelling of a duration, for people (`1d12h`)."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)
