"""One self-contained HTML page of reports: inline CSS, inline SVG charts (drawn by
`engine.reports.charts`), no script and nothing fetched, so it opens offline and can be mailed
as one file. A Content-Security-Policy forbids any network load. Jinja2 with autoescape."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from engine.clock import isoformat
from engine.reports.charts import Svg, draw
from engine.reports.formats import views
from engine.reports.model import Report, Table

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class HtmlTable:
    """A table as the template shows it: headings, rendered cells, definitions, chart."""

    id: str
    title: str
    headings: tuple[tuple[str, bool], ...]  # (heading, numeric)
    rows: tuple[tuple[str, ...], ...]
    definitions: tuple[str, ...]
    chart: Svg | None


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["code"] = code_spans
    return environment


def code_spans(text: str) -> Markup:
    """Definitions quote event names in `backticks`: show those as <code>, escape the rest."""
    parts = [escape(part) for part in text.split("`")]
    if len(parts) % 2 == 0:  # an unpaired backtick: leave the text as it is
        return escape(text)
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if index % 2 else part
        for index, part in enumerate(parts)
    )


def html_table(report: Report, table: Table) -> HtmlTable:
    shown = views(table)
    return HtmlTable(
        id=f"{report.name}-{table.id}",
        title=table.title,
        headings=tuple((v.heading, v.numeric) for v in shown),
        rows=tuple(tuple(v.render(row) for v in shown) for row in table.rows),
        definitions=table.definitions,
        chart=draw(table),
    )


def render_html(reports: Sequence[Report], *, generated_at: datetime) -> str:
    template = _environment().get_template("report.html.j2")
    return template.render(
        title="Lifecycle reports",
        generated_at=isoformat(generated_at),
        reports=[
            {
                "name": report.name,
                "title": report.title,
                "period": report.period.describe(),
                "notes": report.notes,
                "tables": [html_table(report, table) for table in report.tables],
            }
            for report in reports
        ],
    )
