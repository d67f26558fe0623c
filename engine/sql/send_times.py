"""Quiet hours for emails decided in SQL: when an email decided at `now` goes out, by the
user's timezone name.

Neither database can apply Python's zoneinfo, and PostgreSQL's own time zone database may
differ from it. But with `now` fixed, `decide()`'s send time depends on the timezone name
alone, so Python computes it for every name zoneinfo lists, and SQL looks the user's up in
that table (a CASE). Users whose timezone is not in the list take the decide() path, which
stays the one definition. Pure: builds expressions, never runs them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import String, and_, case, func
from sqlalchemy.sql.elements import ColumnElement

from engine.decide.send_time import next_allowed, zone
from engine.rules.quiet_hours import QuietHours
from engine.sql.dialect import NameIn, ZoneTime, zone_map
from engine.sql.moments import Moments
from engine.sql.schema import UTCDateTime, users


@dataclass(frozen=True)
class SendTimes:
    """When an email decided at one `now` goes out, for each timezone name SQL may see."""

    without: datetime  # users without a timezone
    shifted: tuple[tuple[datetime, tuple[str, ...]], ...]  # quiet now: (send time, names)


@lru_cache(maxsize=1)
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


@lru_cache(maxsize=16)
def send_times(now: datetime, quiet: QuietHours, default_timezone: str) -> SendTimes:
    """`next_allowed` in `zone(name, default)` for every listed name: decide()'s own call."""
    by_time: dict[datetime, list[str]] = {}
    for name in _zone_names():
        at = next_allowed(now, quiet, zone(name, default_timezone))
        if at != now:
            by_time.setdefault(at, []).append(name)
    return SendTimes(
        without=next_allowed(now, quiet, zone(None, default_timezone)),
        shifted=tuple((at, tuple(names)) for at, names in sorted(by_time.items())),
    )


def unlisted_timezone() -> ColumnElement[bool]:
    """Users whose timezone the table does not cover: decide() handles them."""
    timezone = users.c.timezone
    return and_(timezone.is_not(None), NameIn(timezone, _zone_names(), negated=True))


def send_at(
    quiet: QuietHours, default_timezone: str, timezone: ColumnElement[Any], at: Moments
) -> ColumnElement[Any]:
    """The send time of an email to a user with this (listed, or NULL) timezone: `now`
    unless the zone is in its quiet hours. The table is two parameters of `now`: the time
    without a timezone, and the shifted zones' times (`zone_map`), one JSON object."""

    def table(now: datetime) -> SendTimes:
        return send_times(now, quiet, default_timezone)

    without = at.computed("send_without", lambda now: table(now).without, UTCDateTime())
    shifted = at.computed("send_shifted", lambda now: _shifted(table(now)), String())
    return case(
        (timezone.is_(None), without),
        else_=func.coalesce(ZoneTime(timezone, shifted), at.at()),
    )


@lru_cache(maxsize=16)
def _shifted(times: SendTimes) -> str:
    """Encoded once per `now`: every rule's statement of a tick binds the same."""
    return zone_map({name: at for at, names in times.shifted for name in names})
