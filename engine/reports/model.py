"""A report as plain data: titled tables of JSON-ready rows, each with the definitions a
reader needs and, optionally, how to chart it. Printing and drawing live elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.reports.periods import Period
from engine.reports.stats import rate

# How a column's values read: `rate`, `change` and `points` are fractions (0.25 = 25%,
# +25%, +25 points), `duration` seconds, `interval` a [low, high] pair of points, `p` a p-value.
Kind = Literal["text", "count", "rate", "change", "points", "interval", "duration", "p", "number"]
Row = Mapping[str, Any]


@dataclass(frozen=True)
class Column:
    key: str
    heading: str
    kind: Kind = "text"


@dataclass(frozen=True)
class View:
    """One column as people see it (tables, HTML), when it combines several data columns,
    e.g. "4 / 9 (44.4%)". JSON and CSV always carry the data columns."""

    heading: str
    render: Callable[[Row], str]
    numeric: bool = True


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars: one group per row (labelled by `label` keys), one bar per series."""

    title: str
    label: tuple[str, ...]
    series: tuple[tuple[str, str], ...]  # (row key, legend)
    kind: Kind = "rate"


@dataclass(frozen=True)
class Heatmap:
    """A grid of shares (0-1): one line per row, one cell per (row key, heading)."""

    title: str
    label: str
    cells: tuple[tuple[str, str], ...]


Chart = BarChart | Heatmap


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    definitions: tuple[str, ...] = ()
    chart: Chart | None = None
    views: tuple[View, ...] = ()  # how people see it; default: one view per data column

    def column(self, key: str) -> Column:
        return next(c for c in self.columns if c.key == key)


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    period: Period
    tables: tuple[Table, ...]
    notes: tuple[str, ...] = field(default=())

    def table(self, table_id: str) -> Table:
        return next(t for t in self.tables if t.id == table_id)


def group_heading(by: str | None) -> tuple[Column, ...]:
    """The leading "Persona" / "Signup source" column of a table broken down with --by."""
    return (Column("group", by.replace("_", " ").capitalize()),) if by else ()


def count_rate_columns(
    key: str, heading: str, rate_heading: str = "%", rate_key: str | None = None
) -> tuple[Column, Column]:
    """A count column followed by its share of some total (`<key>_rate` unless named)."""
    return (Column(key, heading, "count"), Column(rate_key or f"{key}_rate", rate_heading, "rate"))


def count_rate(key: str, count: int, total: int, rate_key: str | None = None) -> dict[str, Any]:
    """The row values of `count_rate_columns`: the count and `rate(count, total)`."""
    return {key: count, rate_key or f"{key}_rate": rate(count, total)}
