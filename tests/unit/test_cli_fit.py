"""Tables that fit the terminal, and progress bars that appear only on one."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

from rich.console import Console

from engine.cli.fit import Column, fitted_table, kept
from engine.cli.present import tick_table
from engine.cli.progress import progress_bar
from engine.runner import TickReport

COLUMNS = [
    Column("Rule", 12, 0),
    Column("User", 8, 0),
    Column("Persona/source", 12, 1),
    Column("Status", 8, 0),
    Column("Email", 18, 2),
    Column("Guide", 10, 1),
]
ROW = ["welcome-sales-marketing", "omar", "data_engineer/organic", "send", "welcome", "tour"]


def render(width: int) -> str:
    file = StringIO()
    Console(width=width, file=file, color_system=None).print(
        fitted_table(COLUMNS, [ROW], width, title="t")
    )
    return file.getvalue()


def test_a_wide_terminal_shows_every_column() -> None:
    assert kept(COLUMNS, 200) == [0, 1, 2, 3, 4, 5]
    assert "hidden" not in render(200)


def test_a_narrow_terminal_drops_the_lowest_priorities_first() -> None:
    assert kept(COLUMNS, 80) == [0, 1, 2, 3, 4]  # the rightmost of the lowest goes first
    assert kept(COLUMNS, 70) == [0, 1, 3, 4]  # then the other of that priority
    text = render(70)
    assert "hidden at 70 columns: Persona/source, Guide" in " ".join(text.split())
    assert "Pers" not in text.split("hidden")[0]
    assert "omar" in text  # a whole value, not a folded sliver


def test_priority_zero_columns_stay_however_narrow() -> None:
    assert kept(COLUMNS, 20) == [0, 1, 3]


def test_the_progress_bar_draws_only_on_a_terminal() -> None:
    for terminal, drawn in ((True, True), (False, False)):
        file = StringIO()
        console = Console(file=file, force_terminal=terminal, width=80)
        with progress_bar("Ingesting x.jsonl", 10, unit="lines", console=console) as update:
            update(5)
        assert ("Ingesting" in file.getvalue()) is drawn


def test_the_tick_table_keeps_a_long_rule_id_whole_at_80_columns() -> None:
    longest = "organic-data-engineer-no-connection-24h"  # the default pack's longest id
    report = TickReport(datetime(2026, 3, 10, tzinfo=UTC))
    report.written[f"{longest}/pending"] = 3
    file = StringIO()
    Console(width=80, file=file, color_system=None).print(tick_table(report))
    assert any(longest in line for line in file.getvalue().splitlines())
