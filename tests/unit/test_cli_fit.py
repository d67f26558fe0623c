"""Tables that fit the terminal, and progress bars that appear only on one."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from engine.cli.fit import Column, fitted_table, kept
from engine.cli.progress import progress_bar

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
