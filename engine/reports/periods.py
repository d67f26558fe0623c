"""The time span a report covers, and the calendar buckets (weeks, months) reports group by.

Weeks and months are computed in SQL as integers (see `engine.reports.sql`): a week index
counts Monday-based weeks since 1969-12-29, a month number is `year * 12 + month - 1`. This
module turns those integers back into dates and labels."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from engine.clock import isoformat

# The Monday on or before 1970-01-01 (a Thursday): week index 0 starts here.
WEEK_ZERO = date(1969, 12, 29)
SECONDS_PER_DAY = 86_400
DAY = timedelta(hours=24)


@dataclass(frozen=True)
class Period:
    """`[start, end)`: which signups (or sends) a report covers. `as_of` is when it is
    computed: events after it are not looked at, so a report is reproducible for a given
    `as_of`. `start` None means from the beginning of the data."""

    start: datetime | None
    end: datetime
    as_of: datetime

    def __post_init__(self) -> None:
        if self.start is not None and self.start >= self.end:
            raise ValueError(
                f"--from ({isoformat(self.start)}) must be before --to ({isoformat(self.end)})"
            )

    def describe(self) -> str:
        start = isoformat(self.start) if self.start else "the beginning"
        return f"{start} to {isoformat(self.end)} (end excluded), as of {isoformat(self.as_of)}"

    def as_json(self) -> dict[str, str | None]:
        return {
            "from": isoformat(self.start),
            "to": isoformat(self.end),
            "as_of": isoformat(self.as_of),
        }


def week_start(index: int) -> date:
    """The Monday that starts week `index` (as computed by `sql.week_index`)."""
    return WEEK_ZERO + timedelta(weeks=index)


def month_label(number: int) -> str:
    """`2026-03` for the month number `2026 * 12 + 2` (as computed by `sql.month_number`)."""
    year, month = divmod(number, 12)
    return f"{year:04d}-{month + 1:02d}"


def month_number(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1
