"""The times a rule's statement reads, as named bind parameters.

A statement built for one `now` reads every time through `Moments`: `now` plus a fixed
offset (a window's bounds, a `within` start, the cap's window), or a value computed from
`now` (the quiet hours' send times). Each becomes a named parameter holding its value at
that `now`, so the statement runs as built; and `values(later)` gives the parameters that
run the very same statement at a later `now`. The tick builds a rule's statements once and
reuses them: building them was most of a replay's time (130 ms a tick for 14 rules), and
a reused statement also skips SQLAlchemy's cache-key walk. Pure: builds parameters."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import TypeEngine

from engine.sql.schema import UTCDateTime

MICROSECOND = timedelta(microseconds=1)


class Moments:
    """`now`, and the parameters derived from it that a statement reads."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._computed: dict[str, Callable[[datetime], Any]] = {}

    def at(self, offset: timedelta = timedelta(0)) -> BindParameter[datetime]:
        """`now + offset`, one parameter per distinct offset."""
        micros = offset // MICROSECOND
        key = f"at_{'m' if micros < 0 else 'p'}{abs(micros)}"
        self._computed.setdefault(key, partial(_shifted, offset))
        return bindparam(key, self.now + offset, type_=UTCDateTime())

    def computed(
        self, key: str, compute: Callable[[datetime], Any], type_: TypeEngine[Any]
    ) -> BindParameter[Any]:
        """`compute(now)`: the caller names it, and one key holds one computation."""
        self._computed[key] = compute
        return bindparam(key, compute(self.now), type_=type_)

    def values(self, now: datetime) -> dict[str, Any]:
        """The parameters that run the statements built here at `now`."""
        return {key: compute(now) for key, compute in self._computed.items()}


def moments(now: datetime | Moments) -> Moments:
    """Callers that build a statement to run once pass a plain `now`."""
    return now if isinstance(now, Moments) else Moments(now)


def _shifted(offset: timedelta, now: datetime) -> datetime:
    return now + offset
