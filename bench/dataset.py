"""The synthetic population (engine.demo, plus the retention layer of bench.retention that the
v2 rules read), generated once, loaded through the Store's own ingestion path in chunks (users,
events, group calls), with a progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from bench.retention import Dataset, with_retention
from engine.store import Store
from engine.whatif.population import generate

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
DAYS = 30
CHUNK = 5000
T = TypeVar("T")


@dataclass(frozen=True)
class LoadFigures:
    users: int
    events: int
    seconds: float
    accounts: int = 0  # group calls

    @property
    def rows(self) -> int:
        return self.users + self.events + self.accounts

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def make_population(users: int, seed: int) -> Dataset:
    """`users` demo users over the last DAYS days, and the retention layer on top."""
    return with_retention(generate(users, seed=seed, now=NOW, days=DAYS), seed, NOW)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def load(store: Store, population: Dataset, console: Console) -> None:
    """Upsert the users, insert the events, then the group calls, 5000 rows a batch."""
    total = len(population.users) + len(population.events) + len(population.accounts)
    with _progress(console) as progress:
        task = progress.add_task(f"loading into {store.dialect}", total=total)
        _feed(progress, task, population.users, lambda c: store.people.upsert_users(c, NOW))
        _feed(progress, task, population.events, lambda c: store.people.insert_events(c, NOW))
        _feed(progress, task, population.accounts, lambda c: store.people.upsert_accounts(c, NOW))


def _feed(
    progress: Progress, task: TaskID, items: Sequence[T], write: Callable[[Sequence[T]], int]
) -> None:
    for chunk in chunks(items):
        write(chunk)
        progress.advance(task, len(chunk))


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
