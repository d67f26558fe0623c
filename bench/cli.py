"""`python -m bench`: the command line, and the order of the steps on each database."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from bench.arguments import positive
from bench.databases import DIALECTS, analyze, newest_event_id, open_database, server_version
from bench.dataset import DAYS, NOW, LoadFigures, load, make_population
from bench.engine_run import ROOT, SHIPPED_CONFIG, STEADY_AFTER, open_engine, run_engine
from bench.errors import BenchError
from bench.hand_run import run_hand
from bench.hand_watermark import run_watermark
from bench.handsql import check_against
from bench.machine import Machine
from bench.per_rule import per_rule
from bench.reference_run import disagreements, run_reference
from bench.results import DbResult, print_report, write_json
from bench.retention import Dataset
from bench.scale import run_scale, sizes
from bench.scale_report import print_scale, write_scale_json
from bench.timing import peak_rss_mb, timed
from engine.app.wiring import App

DEFAULT_JSON = ROOT / "bench" / "results" / "latest.json"
SCALE_JSON = ROOT / "bench" / "results" / "scale-latest.json"
HISTORY_DEFAULT = 5
T = TypeVar("T")
WIDE = 160


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark a tick of the default rule pack against hand-written SQL and "
        "against the reference evaluator, side by side, per database.",
    )
    parser.add_argument("--users", type=positive, default=100_000, help="synthetic users")
    parser.add_argument("--db", choices=(*DIALECTS, "both"), default="sqlite")
    parser.add_argument("--sample", type=positive, default=2000, help="reference sample size")
    parser.add_argument(
        "--sample-pick",
        choices=("first", "spread"),
        # Ids follow signup order, so the first ids are the oldest users, whose windows have
        # all closed: a sample of them checks nothing. Every k-th id spans the whole period.
        default="spread",
        help="spread (default): every k-th id; first: the first N user ids in order",
    )
    parser.add_argument("--repeat", type=positive, default=3, help="timed runs (median)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help=f"where to write figures (default {DEFAULT_JSON.relative_to(ROOT)}, "
        f"with --scale {SCALE_JSON.relative_to(ROOT)})",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--config",
        type=Path,
        default=SHIPPED_CONFIG,
        help="take mail settings etc. from this config file (default: the shipped config.yaml, "
        "with quiet hours and a daily cap, as users run it)",
    )
    parser.add_argument(
        "--defaults",
        dest="config",
        action="store_const",
        const=None,
        help="the built-in defaults instead of a config file (no quiet hours, no daily cap)",
    )
    parser.add_argument(
        "--per-rule", action="store_true", help="also break the time down rule by rule"
    )
    scale = parser.add_argument_group("scaling (--scale)")
    scale.add_argument(
        "--scale",
        action="store_true",
        help="instead: ticks at 10k and 100k users (first pass, steady, per rule, memory, "
        "stale statistics); --users and --sample do not apply",
    )
    scale.add_argument("--million", action="store_true", help="with --scale: add 1M users")
    scale.add_argument(
        "--same-rate",
        action="store_true",
        help="with --scale: spread signups over 30 days per 10k users, so that open windows "
        "hold as many users at every N (history grows, windows do not)",
    )
    scale.add_argument(
        "--history",
        type=int,
        default=HISTORY_DEFAULT,
        help="with --scale: extra page_viewed events per user, read by no rule "
        f"(default {HISTORY_DEFAULT}: about 10 events a user, as the target states)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = _console()
    try:
        _run(args, console)
    except BenchError as exc:
        console.print(f"[bold red]benchmark aborted:[/] {exc}")
        return 2
    return 0


def _console() -> Console:
    """Wide enough for the tables when the output goes to a file or a pipe."""
    console = Console()
    return console if console.is_terminal else Console(width=WIDE)


def _run(args: argparse.Namespace, console: Console) -> None:
    if args.scale:
        _run_scale(args, console)
        return
    population = _step(
        console, f"generating {args.users:,} users", lambda: make_population(args.users, args.seed)
    )
    _freeze_heap()
    machine = Machine()
    results = []
    for dialect in DIALECTS if args.db == "both" else (args.db,):
        result = bench_database(dialect, population, args, console)
        if dialect == "postgresql":
            machine.postgresql = result.server
        results.append(result)
    print_report(console, machine, results, args.sample_pick)
    path = args.json or DEFAULT_JSON
    write_json(path, settings(args, population), machine, results)
    console.print(f"figures written to {path}")


def _run_scale(args: argparse.Namespace, console: Console) -> None:
    machine = Machine()
    points = run_scale(args, console, machine)
    print_scale(console, machine, points)
    path = args.json or SCALE_JSON
    write_scale_json(path, scale_settings(args), machine, points)
    console.print(f"figures written to {path}")


def _freeze_heap() -> None:
    """Move the generated population out of the garbage collector's sight. It stays in memory
    for the second database, and a daemon's heap would not hold it: left in, every full
    collection during a timed tick walks its million objects, which slows the engine's
    allocating Python side and not the hand SQL (measured at 100k users: a PostgreSQL tick
    took 3.3 s with it, 2.2-2.6 s without)."""
    gc.collect()
    gc.freeze()


def bench_database(
    dialect: str, population: Dataset, args: argparse.Namespace, console: Console
) -> DbResult:
    console.rule(dialect)
    with open_database(dialect) as url:
        app = open_engine(url, args.config)
        try:
            return _measure(app, population, args, console)
        finally:
            app.store.engine.dispose()


def _measure(app: App, population: Dataset, args: argparse.Namespace, console: Console) -> DbResult:
    check_against(app.rules, app.config.defaults.guide_ttl)
    engine = app.store.engine
    loaded = _load(app, population, console)
    reference = _step(
        console,
        f"reference evaluator over {min(args.sample, args.users):,} users",
        lambda: run_reference(app, args.users, args.sample, args.sample_pick, args.repeat),
    )
    ticks = _step(console, "engine ticks", lambda: run_engine(app, args.repeat))
    hand = _step(console, "hand-written SQL", lambda: run_hand(engine, args.repeat, ticks.keys))
    newest, steady_at = newest_event_id(engine), NOW + STEADY_AFTER
    watermark = _step(
        console,
        "hand-written watermark query",
        lambda: (
            run_watermark(engine, app.rules, NOW, steady_at, newest, args.repeat),
            run_watermark(engine, app.rules, steady_at, steady_at, newest, args.repeat),
        ),
    )
    breakdown = (
        _step(console, "per rule", lambda: per_rule(app, args.repeat)) if args.per_rule else []
    )
    return DbResult(
        dialect=engine.dialect.name,
        server=server_version(engine),
        load=loaded,
        engine=ticks,
        hand=hand,
        watermark_steady=watermark[0],
        watermark_idle=watermark[1],
        reference=reference,
        reference_disagreements=disagreements(reference, ticks.keys),
        peak_rss_mb=peak_rss_mb(),
        per_rule=breakdown,
    )


def _load(app: App, population: Dataset, console: Console) -> LoadFigures:
    seconds, _ = timed(lambda: load(app.store, population, console))
    figures = LoadFigures(
        len(population.users), len(population.events), seconds, len(population.accounts)
    )
    console.print(f"loaded {figures.rows:,} rows: {figures.rows_per_second:,.0f} rows/s")
    _step(console, "ANALYZE", lambda: analyze(app.store.engine))
    return figures


def _step(console: Console, label: str, work: Callable[[], T]) -> T:
    with console.status(f"{label} ..."):
        seconds, result = timed(work)
    console.print(f"{label}: {seconds:.1f} s")
    return result


def settings(args: argparse.Namespace, population: Dataset) -> dict[str, Any]:
    return {
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "users": args.users,
        "veterans": population.veterans,  # users the retention layer adds (bench.retention)
        "events": len(population.events),
        "accounts_with_group_call": len(population.accounts),
        "seed": args.seed,
        "now": NOW.isoformat(),
        "days": DAYS,
        "repeat": args.repeat,
        "sample": args.sample,
        "sample_pick": args.sample_pick,
        "config": str(args.config) if args.config else None,
    }


def scale_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "sizes": sizes(args),
        "same_rate": args.same_rate,
        "history_events_per_user": args.history,
        "seed": args.seed,
        "now": NOW.isoformat(),
        "repeat": args.repeat,
        "config": str(args.config) if args.config else None,
    }
