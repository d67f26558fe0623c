"""Quiet hours: when an email may go out in the user's own timezone. Pure; takes `now`."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator


class QuietHours(BaseModel):
    """No email between `start` and `end` local time (`21:00`-`08:00` spans midnight)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML 1.1 reads an unquoted 21:00 as 1260
            raise ValueError("write times in quotes, e.g. '21:00'")
        return value

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


def zone(name: str | None, default: str) -> ZoneInfo:
    """The user's timezone, else the default; an unknown name falls back to the default."""
    for candidate in (name, default, "UTC"):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def next_allowed(at: datetime, quiet: QuietHours | None, tz: ZoneInfo) -> datetime:
    """`at` itself when outside the quiet window, else the window's end (UTC). Computed on the
    local wall clock, so it stays right across daylight-saving changes."""
    if quiet is None:
        return at
    local = at.astimezone(tz)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return at
    end_date = local.date()
    if quiet.start > quiet.end and local.time() >= quiet.start:
        end_date += timedelta(days=1)  # evening part of a window that ends tomorrow morning
    end = datetime.combine(end_date, quiet.end, tzinfo=tz)
    return end.astimezone(UTC)
