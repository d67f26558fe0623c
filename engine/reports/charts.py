"""Charts as plain geometry (rectangles, labels, lines) that the HTML template turns into
inline SVG: no JavaScript, no library, nothing fetched. Pure functions of a report table."""

from __future__ import annotations

from dataclasses import dataclass

from engine.reports.formats import MISSING, format_value
from engine.reports.model import BarChart, Chart, Heatmap, Row, Table

PALETTE = ("#3b6fb6", "#e0863a", "#5a9e5a", "#a05195", "#8c8c8c")
WIDTH = 800
LABEL_WIDTH = 290
BAR_AREA = 420
BAR_HEIGHT = 14
GROUP_GAP = 10
LEGEND_HEIGHT = 28
MAX_LABEL = 40  # characters; the full label is in the tooltip
CELL_WIDTH, CELL_HEIGHT, ROW_LABEL_WIDTH = 58, 26, 110


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    tip: str


@dataclass(frozen=True)
class Label:
    x: float
    y: float
    text: str
    anchor: str = "start"  # SVG text-anchor
    fill: str = "#222"


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Svg:
    title: str
    width: float
    height: float
    rects: tuple[Rect, ...]
    labels: tuple[Label, ...]
    lines: tuple[Line, ...]


def draw(table: Table) -> Svg | None:
    chart: Chart | None = table.chart
    if chart is None or not table.rows:
        return None
    if isinstance(chart, Heatmap):
        return heatmap(chart, table.rows)
    return bar_chart(chart, table.rows)


def _label(row: Row, keys: tuple[str, ...]) -> str:
    parts = [str(row.get(k)) for k in keys if row.get(k) is not None]
    shown = [p for p in parts if p != "all"] or parts
    return " · ".join(shown)


def _short(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


def _scale(chart: BarChart, rows: tuple[Row, ...]) -> float:
    """Rates are drawn on 0-100%; other values on 0 to the largest value."""
    if chart.kind == "rate":
        return 1.0
    values = [float(r[k]) for r in rows for k, _ in chart.series if r.get(k) is not None]
    return max([*values, 0.0]) or 1.0


def bar_chart(chart: BarChart, rows: tuple[Row, ...]) -> Svg:
    rects: list[Rect] = []
    labels: list[Label] = _legend(chart)
    lines: list[Line] = []
    top, scale = LEGEND_HEIGHT, _scale(chart, rows)
    group_height = len(chart.series) * (BAR_HEIGHT + 2) + GROUP_GAP
    for index, row in enumerate(rows):
        y0 = top + index * group_height
        name = _label(row, chart.label)
        middle = y0 + (group_height - GROUP_GAP) / 2
        labels.append(Label(LABEL_WIDTH - 8, middle, _short(name), "end"))
        for s, (key, legend) in enumerate(chart.series):
            value = row.get(key)
            y = y0 + s * (BAR_HEIGHT + 2)
            shown = format_value(chart.kind, value)
            width = 0.0 if value is None else max(0.0, float(value)) / scale * BAR_AREA
            tip = f"{name} — {legend}: {shown}"
            rects.append(Rect(LABEL_WIDTH, y, width, BAR_HEIGHT, _color(s), tip))
            labels.append(Label(LABEL_WIDTH + width + 4, y + BAR_HEIGHT / 2, shown))
    bottom = top + len(rows) * group_height
    lines.append(Line(LABEL_WIDTH, top - 4, LABEL_WIDTH, bottom))
    return Svg(chart.title, WIDTH, bottom + 6, tuple(rects), tuple(labels), tuple(lines))


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _legend(chart: BarChart) -> list[Label]:
    labels, x = [], float(LABEL_WIDTH)
    for index, (_, name) in enumerate(chart.series):
        labels.append(Label(x, LEGEND_HEIGHT / 2, f"■ {name}", fill=_color(index)))
        x += 16 + 8 * len(name)
    return labels


def heatmap(chart: Heatmap, rows: tuple[Row, ...]) -> Svg:
    rects: list[Rect] = []
    labels: list[Label] = []
    top = CELL_HEIGHT
    for c, (_, heading) in enumerate(chart.cells):
        x = ROW_LABEL_WIDTH + c * CELL_WIDTH + CELL_WIDTH / 2
        labels.append(Label(x, top / 2, heading, "middle"))
    for r, row in enumerate(rows):
        y = top + r * CELL_HEIGHT
        name = str(row.get(chart.label))
        labels.append(Label(ROW_LABEL_WIDTH - 8, y + CELL_HEIGHT / 2, name, "end"))
        for c, (key, heading) in enumerate(chart.cells):
            value = row.get(key)
            x = ROW_LABEL_WIDTH + c * CELL_WIDTH
            shown = format_value("rate", value)
            tip = f"{name}, {heading}: {shown}"
            rects.append(Rect(x, y, CELL_WIDTH - 2, CELL_HEIGHT - 2, _shade(value), tip))
            ink = "#fff" if value is not None and value > 0.55 else "#222"
            text = shown if value is not None else MISSING
            labels.append(Label(x + CELL_WIDTH / 2, y + CELL_HEIGHT / 2 - 1, text, "middle", ink))
    width = ROW_LABEL_WIDTH + len(chart.cells) * CELL_WIDTH + 4
    height = top + len(rows) * CELL_HEIGHT + 4
    return Svg(chart.title, width, height, tuple(rects), tuple(labels), ())


def _shade(value: float | None) -> str:
    """White (0%) to the palette's blue (100%); light grey for a month not reached yet."""
    if value is None:
        return "#eeeeee"
    v = min(max(value, 0.0), 1.0)
    red, green, blue = (round(255 - v * (255 - c)) for c in (59, 111, 182))
    return f"#{red:02x}{green:02x}{blue:02x}"
