"""Reports for people (rich tables, definitions under each) and for programs (JSON, CSV).
JSON and CSV carry raw values (fractions, seconds); tables show percentages and durations."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Group, JustifyMethod, RenderableType
from rich.padding import Padding
from rich.table import Table as RichTable
from rich.text import Text

from engine.reports.formats import views
from engine.reports.model import Column, Report, Table

# ---- rich (people) ---------------------------------------------------------------------


def rich_report(report: Report, width: int = 120) -> RenderableType:
    """The report for a terminal `width` columns wide: tables that fit, cards otherwise."""
    parts: list[RenderableType] = [
        Text(report.title, style="bold underline"),
        Text(f"Period: {report.period.describe()}", style="dim"),
    ]
    for note in report.notes:
        parts.append(Text(note, style="dim"))
    for table in report.tables:
        shown = rich_table(table) if natural_width(table) <= width else cards(table)
        parts.extend(["", shown, *_definitions(table)])
    return Group(*parts)


def natural_width(table: Table) -> int:
    """Columns as wide as their widest cell (headings may wrap), plus padding and rules."""
    shown = views(table)
    widths = [
        max(
            [
                len(max(v.heading.split(), key=len, default="")),
                *(len(v.render(r)) for r in table.rows),
            ]
        )
        for v in shown
    ]
    return sum(widths) + 3 * len(widths) + 1


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def rich_table(table: Table) -> RichTable:
    # Light rules between columns: report tables are wide, borders would take their room.
    rendered = RichTable(
        title=table.title,
        header_style="bold",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        title_style="bold",
    )
    shown = views(table)
    for view in shown:
        justify: JustifyMethod = "right" if view.numeric else "left"
        rendered.add_column(view.heading, justify=justify, overflow="fold")
    for row in table.rows:
        rendered.add_row(*(view.render(row) for view in shown))
    if not table.rows:
        rendered.caption = "no data in this period"
    return rendered


def cards(table: Table) -> RenderableType:
    """A table too wide for the terminal, one card per row: its name, then field: value."""
    shown = views(table)
    parts: list[RenderableType] = [Text(table.title, style="bold")]
    for row in table.rows:
        card = RichTable.grid(padding=(0, 2))
        card.add_column(style="dim")
        card.add_column()
        for view in shown[1:]:
            card.add_row(view.heading, view.render(row))
        name = shown[0].render(row)
        indent = 2 + len(name) - len(name.lstrip())  # a sub-row (a --by group) stays under its rule
        parts.extend([Text(name, style="bold"), Padding(card, (0, 0, 1, indent))])
    if not table.rows:
        parts.append(Text("no data in this period", style="dim"))
    return Group(*parts)


def _definitions(table: Table) -> list[RenderableType]:
    return [Padding(Text(line, style="dim"), (0, 0, 0, 2)) for line in table.definitions]


# ---- JSON and CSV (programs) -----------------------------------------------------------


def json_report(report: Report) -> dict[str, Any]:
    return {
        "report": report.name,
        "title": report.title,
        "period": report.period.as_json(),
        "notes": list(report.notes),
        "tables": [
            {
                "id": table.id,
                "title": table.title,
                "columns": [_json_column(c) for c in table.columns],
                "rows": [dict(row) for row in table.rows],  # every field, not only the columns
                "definitions": list(table.definitions),
            }
            for table in report.tables
        ],
    }


def _json_column(column: Column) -> dict[str, str]:
    return {"key": column.key, "heading": column.heading, "kind": column.kind}


def csv_reports(reports: Sequence[Report]) -> str:
    """Each table as a block (a header line, then rows) whose first two columns name the
    report and the table; blocks are separated by an empty line. Raw values, as in JSON;
    an interval becomes two columns, `<key>_low` and `<key>_high`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    first = True
    for report in reports:
        for table in report.tables:
            if not first:
                writer.writerow([])
            first = False
            writer.writerow(["report", "table", *_csv_headers(table.columns)])
            for row in table.rows:
                writer.writerow([report.name, table.id, *_csv_values(table.columns, row)])
    return buffer.getvalue()


def _csv_headers(columns: Sequence[Column]) -> list[str]:
    headers: list[str] = []
    for column in columns:
        if column.kind == "interval":
            headers.extend([f"{column.key}_low", f"{column.key}_high"])
        else:
            headers.append(column.key)
    return headers


def _csv_values(columns: Sequence[Column], row: Any) -> list[Any]:
    values: list[Any] = []
    for column in columns:
        value = row.get(column.key)
        if column.kind == "interval":
            values.extend(value if value is not None else ["", ""])
        else:
            values.append("" if value is None else value)
    return values
