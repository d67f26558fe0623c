"""Tables that fit their terminal: below the width every column needs to stay readable,
the least important columns are left out (and the caption says which), instead of rich
folding every cell into slivers ("Pers/ona/sour/ce"). JSON always has every field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table

# What a bordered rich table adds per column (a space either side and a rule), and once.
PER_COLUMN, PER_TABLE = 3, 1
WIDE = 10_000  # no terminal: every column (callers pass the console's width)


@dataclass(frozen=True)
class Column:
    header: str
    min_width: int  # below this the column's values are unreadable
    priority: int  # the lowest goes first when the terminal is too narrow; 0 never goes
    options: dict[str, Any] = field(default_factory=dict)  # for Table.add_column


def kept(columns: Sequence[Column], width: int) -> list[int]:
    """The indexes of the columns that fit in `width`, in their order: the lowest priority
    columns are dropped one by one until the rest fit (or only the priority-0 ones remain)."""
    keep = list(range(len(columns)))
    droppable = [i for i in keep if columns[i].priority > 0]
    # Ties: the rightmost first, so the table loses its tail before its middle.
    for index in sorted(droppable, key=lambda i: (columns[i].priority, -i)):
        if sum(columns[i].min_width + PER_COLUMN for i in keep) + PER_TABLE <= width:
            break
        keep.remove(index)
    return keep


def fitted_table(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    caption: str | None = None,
    **table_options: Any,
) -> Table:
    """A table of the columns that fit `width`, its caption naming the ones left out."""
    keep = kept(columns, width)
    table = Table(header_style="bold", **table_options)
    for i in keep:
        table.add_column(columns[i].header, min_width=columns[i].min_width, **columns[i].options)
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    hidden = [_plain(columns[i].header) for i in range(len(columns)) if i not in keep]
    notes = [caption] if caption else []
    if hidden:
        shown = ", ".join(hidden)
        notes.append(f"hidden at {width} columns: {shown} (widen the terminal, or --format json)")
    if notes:
        table.caption = "; ".join(notes)
    return table


def _plain(header: str) -> str:
    return header.split("\n", 1)[0]
