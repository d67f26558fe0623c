"""Values as people read them: 0.253 as a rate is `25.3%`, 90000 seconds is `1d 1h`."""

from __future__ import annotations

from typing import Any

from engine.reports.model import Column, Kind, Row, Table, View

MISSING = "—"


def format_value(kind: Kind, value: Any) -> str:
    """A value as a person reads it: 0.253 as a rate is `25.3%`, 90000 s is `1d 1h`."""
    if value is None:
        return MISSING
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "change":
        return f"{value * 100:+.1f}%"
    if kind == "points":
        return f"{value * 100:+.1f} pts"
    if kind == "interval":
        low, high = value
        return f"[{low * 100:+.1f}, {high * 100:+.1f}] pts"
    if kind == "duration":
        return format_duration(float(value))
    if kind == "p":
        return "< 0.001" if value < 0.001 else f"{value:.3f}"
    if kind == "number":
        return f"{value:,.2f}"
    if kind == "count":
        return f"{value:,}"
    return str(value)


def format_duration(seconds: float) -> str:
    """The two largest units, rounded to the minute: `45m`, `5h 30m`, `4d 4h`."""
    minutes = round(seconds / 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def views(table: Table) -> tuple[View, ...]:
    """The table's columns as people see them."""
    return table.views or tuple(_plain(c) for c in table.columns)


def _plain(column: Column) -> View:
    def render(row: Row) -> str:
        return format_value(column.kind, row.get(column.key))

    return View(column.heading, render, column.kind != "text")


def show(heading: str, key: str, kind: Kind = "text") -> View:
    return _plain(Column(key, heading, kind))


def ratio(heading: str, part: str, whole: str, share: str) -> View:
    """`4 / 9 (44.4%)`."""

    def render(row: Row) -> str:
        return f"{row[part]:,} / {row[whole]:,} ({format_value('rate', row[share])})"

    return View(heading, render)


def pair(heading: str, first: str, second: str, kind: Kind) -> View:
    """`12h 30m / 2d 2h`: two values of the same kind."""

    def render(row: Row) -> str:
        a, b = format_value(kind, row.get(first)), format_value(kind, row.get(second))
        return MISSING if a == b == MISSING else f"{a} / {b}"

    return View(heading, render)
