"""Progress bars for the long commands: on stderr, and only when stderr is a terminal, so
that piped or redirected output (and JSON on stdout) is never mixed with a bar."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from engine.cli.base import err

Update = Callable[[float], None]


@contextmanager
def progress_bar(
    description: str,
    total: float | None,
    *,
    unit: str = "",
    in_bytes: bool = False,
    console: Console = err,
) -> Iterator[Update]:
    """Yields `update(done)`; a no-op off a terminal. The bar disappears when done."""
    if not console.is_terminal:
        yield lambda _done: None
        return
    counts: list[ProgressColumn] = (
        [TransferSpeedColumn()] if in_bytes else [MofNCompleteColumn(), TextColumn(unit)]
    )
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *counts,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=total)
        yield lambda done: bar.update(task, completed=done)


def counted(lines: Iterable[str], update: Update) -> Iterator[str]:
    """The lines, reporting the characters read so far (about the bytes, for a file's bar)."""
    done = 0
    for line in lines:
        done += len(line)
        update(done)
        yield line
