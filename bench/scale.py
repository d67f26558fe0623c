"""`python -m bench --scale`: ticks at 10k and 100k users (and 1M with --million), on each
database, from one deterministic stream of generated users loaded in bulk into all of them."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.bulkload import create_indexes, drop_indexes, load_part
from bench.databases import DIALECTS, analyze, newest_event_id, open_database, server_version
from bench.dataset import DAYS, NOW
from bench.engine_run import open_engine
from bench.hand_watermark import run_watermark
from bench.machine import Machine
from bench.scale_measure import STEADY_AT, rule_ticks, tick_memory, whole_ticks
from bench.scale_report import ScalePoint
from bench.stale_stats import second_pass
from bench.stream import Shape, stream
from bench.timing import timed
from engine.app.wiring import App
from engine.whatif.population import Population

SIZES = (10_000, 100_000)
MILLION = 1_000_000
BASE_RATE_USERS = 10_000  # --same-rate: every N signs up at the pace of 10k users in 30 days
T = TypeVar("T")


@dataclass
class Loaded:
    """One database of the run, open, with the seconds spent loading it."""

    dialect: str
    url: str
    app: App
    seconds: float = 0.0


def sizes(args: argparse.Namespace) -> list[int]:
    return [*SIZES, MILLION] if args.million else list(SIZES)


def days_for(users: int, same_rate: bool) -> float:
    """30 days of signups; with --same-rate, as many days as keep 10k users' signup pace, so
    that the users in an open window stay as many while N (and history) grows."""
    return DAYS * users / BASE_RATE_USERS if same_rate else float(DAYS)


def run_scale(args: argparse.Namespace, console: Console, machine: Machine) -> list[ScalePoint]:
    dialects = DIALECTS if args.db == "both" else (args.db,)
    points = []
    for users in sizes(args):
        shape = Shape(users, args.seed, NOW, days_for(users, args.same_rate), args.history)
        points.extend(_one_size(shape, dialects, args, console, machine))
    return points


def _one_size(
    shape: Shape,
    dialects: tuple[str, ...],
    args: argparse.Namespace,
    console: Console,
    machine: Machine,
) -> list[ScalePoint]:
    console.rule(f"{shape.users:,} users over {shape.days:g} days")
    with ExitStack() as stack:
        databases = [_open(stack, dialect, args.config) for dialect in dialects]
        events = _load(shape, databases, console)
        points = []
        for database in databases:
            if database.dialect == "postgresql":
                machine.postgresql = server_version(database.app.store.engine)
            points.append(_measure(database, shape, events, args, console))
        return points


def _open(stack: ExitStack, dialect: str, config: Path | None) -> Loaded:
    url = stack.enter_context(open_database(dialect))
    app = open_engine(url, config)
    stack.callback(app.store.engine.dispose)
    return Loaded(dialect, url, app)


def _load(shape: Shape, databases: list[Loaded], console: Console) -> int:
    """Stream the users once, each chunk into every database; returns the events made."""
    events = 0
    for database in databases:
        drop_indexes(database.app.store.engine)
    started = time.perf_counter()
    with _progress(console) as progress:
        task = progress.add_task(f"generating and loading {shape.users:,} users", total=shape.users)
        for part in stream(shape):
            for database in databases:
                database.seconds += _timed_load(database, part)
            events += len(part.events)
            progress.advance(task, len(part.users))
    generating = time.perf_counter() - started - sum(db.seconds for db in databases)
    console.print(f"generated {shape.users:,} users + {events:,} events in {generating:.1f} s")
    for database in databases:
        database.seconds += _finish(database)
        console.print(
            f"{database.dialect}: loaded {shape.users:,} users + {events:,} events in "
            f"{database.seconds:.1f} s (bulk, indexes built after, ANALYZE)"
        )
    return events


def _finish(database: Loaded) -> float:
    """Seconds to build the deferred indexes and ANALYZE: part of loading."""
    engine = database.app.store.engine
    indexing, _ = timed(lambda: create_indexes(engine))
    analyzing, _ = timed(lambda: analyze(engine))
    return indexing + analyzing


def _timed_load(database: Loaded, part: Population) -> float:
    seconds, _ = timed(lambda: load_part(database.app.store.engine, part, NOW))
    return seconds


def _measure(
    database: Loaded, shape: Shape, events: int, args: argparse.Namespace, console: Console
) -> ScalePoint:
    app, label = database.app, f"{database.dialect} {shape.users:,}"
    stats = _step(
        console, f"{label}: second pass, stale vs refreshed", lambda: second_pass(app, args.repeat)
    )
    ticks = _step(console, f"{label}: whole ticks", lambda: whole_ticks(app, args.repeat))
    rules = _step(console, f"{label}: rule by rule", lambda: rule_ticks(app, args.repeat))
    first, steady = _step(
        console, f"{label}: tick memory", lambda: tick_memory(app, database.url, args.config)
    )
    engine, newest = app.store.engine, newest_event_id(app.store.engine)
    watermark = _step(
        console,
        f"{label}: hand watermark query",
        lambda: (
            run_watermark(engine, app.rules, NOW, STEADY_AT, newest, args.repeat),
            run_watermark(engine, app.rules, STEADY_AT, STEADY_AT, newest, args.repeat),
        ),
    )
    return ScalePoint(
        dialect=database.dialect,
        users=shape.users,
        events=events,
        days=shape.days,
        load_seconds=database.seconds,
        ticks=ticks,
        rules=rules,
        memory_first=first,
        memory_steady=steady,
        stats=stats,
        watermark_steady=watermark[0],
        watermark_idle=watermark[1],
        same_rate=args.same_rate,
    )


def _step(console: Console, label: str, work: Callable[[], T]) -> T:
    with console.status(f"{label} ..."):
        seconds, result = timed(work)
    console.print(f"{label}: {seconds:.1f} s")
    return result


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
