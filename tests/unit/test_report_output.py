"""How reports read: formatted values, tables or cards by terminal width, CSV blocks, the
chart geometry and the HTML page's escaping. Pure: no database."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from rich.console import Console

from engine.reports.charts import BAR_AREA, LABEL_WIDTH, bar_chart, heatmap
from engine.reports.formats import format_duration, format_value
from engine.reports.html import render_html
from engine.reports.model import BarChart, Column, Heatmap, Report, Table
from engine.reports.output import csv_reports, json_report, natural_width, rich_report
from engine.reports.periods import Period, month_label, week_start

AT = datetime(2026, 3, 1, tzinfo=UTC)
TABLE = Table(
    id="demo",
    title="Demo <table>",
    columns=(
        Column("rule", "Rule"),
        Column("users", "Users", "count"),
        Column("rate", "Rate", "rate"),
        Column("ci", "CI", "interval"),
    ),
    rows=(
        {"rule": "a-rather-long-rule-name", "users": 1200, "rate": 0.253, "ci": [-0.01, 0.2]},
        {"rule": "<b>short</b>", "users": 3, "rate": None, "ci": None},
    ),
    definitions=("Users: people who did `login`.",),
    chart=BarChart("Rates", ("rule",), (("rate", "rate"),)),
)
REPORT = Report("demo", "Demo report", Period(None, AT, AT), (TABLE,))


@pytest.mark.parametrize(
    ("kind", "value", "shown"),
    [
        ("rate", 0.253, "25.3%"),
        ("change", -0.5, "-50.0%"),
        ("points", 0.3, "+30.0 pts"),
        ("interval", [0.077, 0.523], "[+7.7, +52.3] pts"),
        ("duration", 45000.0, "12h 30m"),
        ("p", 0.0004, "< 0.001"),
        ("p", 0.0127, "0.013"),
        ("count", 12345, "12,345"),
        ("rate", None, "—"),
    ],
)
def test_values_read_as_people_expect(kind: str, value: object, shown: str) -> None:
    assert format_value(kind, value) == shown  # type: ignore[arg-type]


def test_durations_keep_the_two_largest_units() -> None:
    assert format_duration(59) == "1m"
    assert format_duration(3600) == "1h"
    assert format_duration(100 * 3600) == "4d 4h"
    assert format_duration(7 * 86400) == "7d"


def test_calendar_labels() -> None:
    assert week_start(2931).isoformat() == "2026-03-02"  # (20514 + 3) // 7, 20514 = 2026-03-02
    assert month_label(2026 * 12 + 2) == "2026-03"


def _printed(width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(rich_report(REPORT, width=width))
    return console.export_text()


def test_a_table_that_fits_is_a_table_and_one_that_does_not_is_cards() -> None:
    # Widest cells: 23 + 5 ("Users") + 5 ("25.3%") + 17 = 50, plus 3 per column and 1 = 63.
    assert natural_width(TABLE) == 63
    wide = _printed(100)
    assert "a-rather-long-rule-name   1,200   25.3%   [-1.0, +20.0] pts" in wide
    narrow = _printed(60)
    assert "a-rather-long-rule-name\n  Users  1,200" in narrow
    assert "Users: people who did `login`." in narrow  # the definitions stay under it


def test_json_keeps_raw_values_and_csv_splits_intervals() -> None:
    data = json_report(REPORT)
    assert data["tables"][0]["rows"][0]["rate"] == 0.253
    assert data["period"] == {
        "from": None,
        "to": "2026-03-01T00:00:00Z",
        "as_of": "2026-03-01T00:00:00Z",
    }
    rows = list(csv.reader(io.StringIO(csv_reports([REPORT]))))
    assert rows[0] == ["report", "table", "rule", "users", "rate", "ci_low", "ci_high"]
    assert rows[1] == ["demo", "demo", "a-rather-long-rule-name", "1200", "0.253", "-0.01", "0.2"]
    assert rows[2] == ["demo", "demo", "<b>short</b>", "3", "", "", ""]


def test_bars_are_proportional_to_rates() -> None:
    chart = bar_chart(BarChart("t", ("rule",), (("rate", "r"),)), ({"rule": "x", "rate": 0.5},))
    (bar,) = chart.rects
    assert (bar.x, bar.width) == (LABEL_WIDTH, BAR_AREA / 2)
    assert bar.tip == "x — r: 50.0%"


def test_heatmap_shades_from_white_to_blue_and_greys_the_future() -> None:
    chart = heatmap(
        Heatmap("h", "cohort", (("m0", "M0"), ("m1", "M1"), ("m2", "M2"))),
        ({"cohort": "2026-03", "m0": 1.0, "m1": 0.0, "m2": None},),
    )
    assert [r.fill for r in chart.rects] == ["#3b6fb6", "#ffffff", "#eeeeee"]


def test_html_escapes_everything_it_is_given() -> None:
    html = render_html([REPORT], generated_at=AT)
    assert "<b>short</b>" not in html
    assert "&lt;b&gt;short&lt;/b&gt;" in html
    assert "Demo &lt;table&gt;" in html
    assert "<code>login</code>" in html  # backticks in definitions become code
    assert html.count("<svg") == 1
