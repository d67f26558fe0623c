"""The `lifecycle` command line. The clock is read here, once per command, and passed down."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from engine import demo as demo_data
from engine.api import create_app
from engine.app import App, open_app, open_store
from engine.checks import check as run_check
from engine.clock import SystemClock, isoformat, parse_instant
from engine.config import Config, config_path, config_required, load_config
from engine.errors import LifecycleError, ProblemsError
from engine.ingest import ingest_lines
from engine.present import preview_json, preview_summary, preview_table, tick_table
from engine.schema import metadata
from engine.serve import serve_api
from engine.store import Store

F = TypeVar("F", bound=Callable[..., Any])
out = Console()
err = Console(stderr=True)


@dataclass
class State:
    config_path: str | None
    stores: list[Store] = field(default_factory=list)

    def config(self) -> Config:
        path = config_path(self.config_path, os.environ)
        return load_config(path, required=config_required(self.config_path, os.environ))

    def app(self) -> App:
        app = open_app(self.config())
        self.stores.append(app.store)
        return app

    def store(self, config: Config) -> Store:
        store = open_store(config)
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.engine.dispose()


def friendly_errors(command: F) -> F:
    """Known errors become clear messages and exit 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ProblemsError as exc:
            for problem in exc.problems:
                err.print(f"[red]error[/]: {problem}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except LifecycleError as exc:
            err.print(f"[red]error[/]: {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


class Instant(click.ParamType):  # type: ignore[type-arg]
    name = "ISO8601"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_instant(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.group()
@click.option(
    "--config",
    "config_file",
    metavar="PATH",
    help="Config file (default ./config.yaml, or $LIFECYCLE_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.version_option(package_name="lifecycle")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, verbose: int) -> None:
    """lifecycle: rules-as-code lifecycle emails and in-app guides."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    ctx.obj = State(config_file)
    ctx.call_on_close(ctx.obj.close)


@cli.command()
@click.pass_obj
@friendly_errors
def check(state: State) -> None:
    """Validate the config, every rule and every template (rendered against sample users)."""
    result = run_check(state.config())
    for problem in result.problems:
        out.print(str(problem), markup=False, highlight=False, soft_wrap=True)
    if result.problems:
        err.print(f"[red]{len(result.problems)} problem(s)[/]")
        sys.exit(1)
    out.print(f"[green]ok[/]: config, {result.rules} rules, {result.templates} templates")


@cli.command("dry-run")
@click.option("--at", "at", type=Instant(), help="Evaluate as of this time (default now).")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule (repeatable).")
@click.option("--user", "user_ids", multiple=True, help="Only this user (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--show-body", is_flag=True, help="Include the rendered text and HTML.")
@click.option("--limit", type=int, help="Table rows to show (JSON is always complete).")
@click.pass_obj
@friendly_errors
def dry_run(
    state: State,
    at: datetime | None,
    rule_ids: tuple[str, ...],
    user_ids: tuple[str, ...],
    fmt: str,
    show_body: bool,
    limit: int | None,
) -> None:
    """Who would get what, and when: a tick at --at that writes nothing."""
    app = state.app()
    _check_rule_ids(app, rule_ids)
    now = at or SystemClock().now()
    previews = app.runner.dry_run(now, rule_ids=rule_ids or None, user_ids=user_ids or None)
    if fmt == "json":
        rows = [preview_json(p, show_body=show_body) for p in previews]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not previews:
        out.print(f"Nothing would fire at {isoformat(now)}.")
        return
    out.print(preview_table(previews, limit=limit))
    out.print(preview_summary(previews))
    if show_body:
        for preview in previews[:limit]:
            if preview.rendered:
                out.rule(f"{preview.planned.rule_id} → {preview.planned.email_to}")
                out.print(f"Subject: {preview.rendered.subject}\n", markup=False)
                out.print(preview.rendered.text, markup=False, highlight=False, soft_wrap=True)


def _check_rule_ids(app: App, rule_ids: tuple[str, ...]) -> None:
    known = {r.id for r in app.rules.rules}
    unknown = [r for r in rule_ids if r not in known]
    if unknown:
        raise LifecycleError(
            f"unknown rule {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})"
        )


@cli.command()
@click.option("--at", "at", type=Instant(), help="Run the tick as of this time (default now).")
@click.pass_obj
@friendly_errors
def tick(state: State, at: datetime | None) -> None:
    """One real evaluation and dispatch pass, then exit (for cron and tests)."""
    app = state.app()
    report = app.runner.tick(at or SystemClock().now())
    if report.written:
        out.print(tick_table(report))
    else:
        out.print(f"Tick at {isoformat(report.now)}: no rule fired for anyone new.")
    sent = ", ".join(f"{k}: {v}" for k, v in sorted(report.dispatched.items())) or "none"
    out.print(
        f"Emails dispatched: {sent} (transport: {app.config.mail.transport}"
        + (f", outbox {app.config.outbox_dir}" if app.config.mail.transport == "file" else "")
        + ")"
    )


@cli.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False))
@click.pass_obj
@friendly_errors
def ingest(state: State, file: str) -> None:
    """Load Segment-spec JSON lines (identify, track) from FILE ('-' for stdin)."""
    store = state.store(state.config())
    now = SystemClock().now()
    if file == "-":
        report = ingest_lines(sys.stdin, store, now, source="<stdin>")
    else:
        path = Path(file)
        if not path.is_file():
            raise LifecycleError(f"{file}: no such file")
        with path.open(encoding="utf-8", errors="replace") as handle:
            report = ingest_lines(handle, store, now, source=file)
    for problem in report.problems:
        err.print(f"[red]rejected[/] {problem}", highlight=False, soft_wrap=True)
    out.print(
        f"{report.lines} lines: {report.users} users identified, {report.events} events "
        f"stored, {report.duplicates} duplicates skipped, {report.rejected} rejected"
    )
    if report.problems:
        sys.exit(1)


@cli.command()
@click.option("--users", "n", type=click.IntRange(1, 5_000_000), default=200, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(1, 365),
    default=7,
    show_default=True,
    help="Signups spread over this many past days.",
)
@click.option("--reset", is_flag=True, help="Empty the database (and outbox) first.")
@click.option(
    "--tour/--no-tour",
    default=True,
    show_default=True,
    help="Then show a dry run, run one tick and list the outbox.",
)
@click.pass_obj
@friendly_errors
def demo(state: State, n: int, seed: int, days: int, reset: bool, tour: bool) -> None:
    """Fill the database with a synthetic Airtouch population (deterministic per seed)."""
    app = state.app()
    now = SystemClock().now()
    if app.store.counts()["users"] and not reset:
        raise LifecycleError(
            "the database already has users; pass --reset to replace "
            "everything in it with the demo population"
        )
    if reset:
        _reset(app)
    with out.status(f"Generating {n} users over {days} days…"):
        population = demo_data.generate(n, seed=seed, now=now, days=days)
        for start in range(0, len(population.users), 5000):
            app.store.upsert_users(population.users[start : start + 5000], now)
        for start in range(0, len(population.events), 5000):
            app.store.insert_events(population.events[start : start + 5000], now)
    out.print(_population_table(app))
    if tour:
        _tour(app, now)


def _reset(app: App) -> None:
    with app.store.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    outbox = app.config.outbox_dir
    if outbox.is_dir():
        for file in outbox.glob("*.eml"):
            file.unlink()


def _population_table(app: App) -> Table:
    counts = app.store.counts()
    table = Table(
        title=f"Demo population: {counts['users']} users, {counts['events']} events",
        header_style="bold",
    )
    table.add_column("Persona")
    table.add_column("Signup source")
    table.add_column("Users", justify="right")
    for persona, source, count in app.store.persona_counts():
        table.add_row(persona or "-", source or "-", str(count))
    return table


def _tour(app: App, now: datetime) -> None:
    previews = app.runner.dry_run(now)
    out.rule("1. Dry run: who would get what, now (nothing is written)")
    out.print(preview_table(previews, limit=15))
    out.print(preview_summary(previews))
    out.rule("2. One real tick")
    report = app.runner.tick(now)
    out.print(tick_table(report))
    out.rule("3. The outbox")
    files = sorted(app.config.outbox_dir.glob("*.eml"))
    out.print(f"{len(files)} .eml files in {app.config.outbox_dir}, for example:")
    for file in files[:5]:
        out.print(f"  {file}", highlight=False, soft_wrap=True)
    out.print(
        "\nNext: [bold]lifecycle dry-run --at <later ISO time>[/] to see what comes next, "
        "[bold]lifecycle deliveries[/] for the ledger."
    )


@cli.command()
@click.option("--status")
@click.option("--rule", "rule_id")
@click.option("--user", "user_id")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
@friendly_errors
def deliveries(
    state: State, status: str | None, rule_id: str | None, user_id: str | None, limit: int, fmt: str
) -> None:
    """List the delivery ledger."""
    store = state.store(state.config())
    rows = store.deliveries(status=status, rule_id=rule_id, user_id=user_id, limit=limit)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, default=_json_default))
        return
    table = Table(title="Delivery ledger", header_style="bold")
    for name in LEDGER_COLUMNS:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(row[name]) for name in LEDGER_COLUMNS))
    out.print(table)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(store.status_counts().items()))
    out.print(f"All rows by status: {counts or 'none'}")


LEDGER_COLUMNS = (
    "id",
    "rule_id",
    "user_id",
    "status",
    "reason",
    "email_to",
    "guide_id",
    "fire_at",
    "sent_at",
)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return isoformat(value) or ""
    return "" if value is None else str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    return str(value)


@cli.command()
@click.option("--no-api", is_flag=True, help="Do not serve the HTTP API in this process.")
@click.pass_obj
@friendly_errors
def run(state: State, no_api: bool) -> None:
    """The daemon: tick every scheduler.tick, and serve the HTTP API, until SIGTERM/Ctrl-C."""
    from engine.daemon import run as run_daemon

    logging.getLogger("lifecycle").setLevel(logging.INFO)
    app, clock = state.app(), SystemClock()
    serve = None
    if not no_api:
        api = app.config.api
        http = create_app(store=app.store, config=app.config, clock=clock)
        serve = functools.partial(serve_api, http, api.host, api.port)
    run_daemon(app, clock, serve=serve)


@cli.command()
@click.option("--host", help="Interface to listen on (default: api.host).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: api.port).")
@click.pass_obj
@friendly_errors
def api(state: State, host: str | None, port: int | None) -> None:
    """Serve the HTTP API alone (unsubscribe links, in-app guides, health)."""
    config = state.config()
    store = state.store(config)
    http = create_app(store=store, config=config, clock=SystemClock())
    serve_api(http, host or config.api.host, config.api.port if port is None else port)


def main() -> None:
    cli(prog_name="lifecycle")
