"""Quiet hours: when an email may go out in the user's own timezone. Pure; takes `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.rules.quiet_hours import QuietHours


# ZoneInfo's own cache is weak: without a strong reference, every tick re-reads the zone
# files (600 names a tick for the send-time table). Zones never change while we run.
@lru_cache(maxsize=2048)
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
