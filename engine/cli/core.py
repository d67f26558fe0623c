"""The everyday commands: check, dry-run, tick, ingest, deliveries, run, api."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape

from engine.app.checks import CheckResult
from engine.app.checks import check as run_check
from engine.app.signing_key import require_signing_key
from engine.app.webhook_secret import require_webhook_secret
from engine.app.wiring import App
from engine.cli.base import Instant, State, cli, err, friendly_errors, out
from engine.cli.fit import Column, fitted_table
from engine.cli.present import preview_json, preview_summary, preview_table, tick_table
from engine.cli.progress import counted, progress_bar
from engine.clock import SystemClock, isoformat
from engine.config import Config
from engine.console import ConsoleSetup
from engine.console.secret import SessionKey, session_key
from engine.errors import LifecycleError
from engine.http.app import create_app
from engine.http.server import serve_api
from engine.ingest.files import ingest_csv, ingest_lines
from engine.ingest.segment import TraitMapping
from engine.model import Status

if TYPE_CHECKING:  # the daemon (and APScheduler) load only for `run`
    from engine.daemon.scheduler import Stop


# An ingest of at least this many users and events refreshes the planner's statistics
# (`People.analyze`): a backfill into a new database would otherwise be planned as empty.
BULK_LOAD = 10_000


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
@friendly_errors
def check(state: State, fmt: str) -> None:
    """Validate the config, every rule and every template (rendered against sample users),
    then lint the rules: errors for rules that can never fire, warnings for rules that read
    accounts the database lacks and for email rules the daily cap can skip. Exit 1 on any
    error; warnings do not change the exit status."""
    result = run_check(state.config())
    if fmt == "json":
        click.echo(json.dumps(check_json(result), indent=2, ensure_ascii=False))
    else:
        for item in [*result.problems, *result.errors, *result.warnings]:
            out.print(str(item), markup=False, highlight=False, soft_wrap=True)
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    if not result.ok:
        count = len(result.problems) + len(result.errors)
        err.print(f"[red]{count} problem(s)[/]{warned}")
        sys.exit(1)
    if fmt != "json":
        out.print(
            f"[green]ok[/]: config, {result.rules} rules, {result.templates} templates{warned}"
        )


def check_json(result: CheckResult) -> dict[str, Any]:
    """`check --format json`: every problem and finding, errors first."""
    problems = [
        {
            "severity": "error",
            "check": "invalid",
            "rule": p.rule_id,
            "file": p.file,
            "line": p.line,
            "message": p.message,
        }
        for p in result.problems
    ]
    findings = [
        {
            "severity": f.severity,
            "check": f.code,
            "rule": f.rule_id,
            "file": f.file,
            "line": f.line,
            "message": f.message,
            **({"related": list(f.related)} if f.related else {}),
        }
        for f in [*result.errors, *result.warnings]
    ]
    return {
        "ok": result.ok,
        "rules": result.rules,
        "templates": result.templates,
        "findings": [*problems, *findings],
    }


@cli.command("dry-run")
@click.option("--at", "at", type=Instant(), help="Evaluate as of this time (default now).")
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule (repeatable).")
@click.option("--user", "user_ids", multiple=True, help="Only this user (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--show-body", is_flag=True, help="Include the rendered text and HTML.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="Rows to show (table and JSON; default all).",
)
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
        rows = [preview_json(p, show_body=show_body) for p in previews[:limit]]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not previews:
        out.print(f"Nothing would fire at {isoformat(now)}.")
        return
    out.print(preview_table(previews, limit=limit, width=out.width))
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
@click.option(
    "--full",
    is_flag=True,
    help="Evaluate every rule's whole window, not only what changed since its last tick.",
)
@click.pass_obj
@friendly_errors
def tick(state: State, at: datetime | None, full: bool) -> None:
    """One real evaluation and dispatch pass, then exit (for cron and tests)."""
    app = state.app()
    _webhook_secret_or_exit(app)
    report = app.runner.tick(at or SystemClock().now(), full=full)
    app.runner.prune()
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
    if report.webhooks:
        hooks = ", ".join(f"{k}: {v}" for k, v in sorted(report.webhooks.items()))
        out.print(f"Webhooks dispatched: {hooks}")


@cli.command()
@click.argument("file", type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "csv"]),
    default="auto",
    show_default=True,
    help="auto: CSV when FILE ends in .csv, else JSON lines.",
)
@click.pass_obj
@friendly_errors
def ingest(state: State, file: str, fmt: str) -> None:
    """Load Segment-spec messages (identify, track, page, screen, group, alias) from FILE
    ('-' for stdin): JSON lines, or CSV with a header row."""
    config = state.config()
    store = state.store(config)
    now = SystemClock().now()
    mapping = TraitMapping.from_config(config.ingest)
    load = (
        ingest_csv
        if fmt == "csv" or (fmt == "auto" and file.lower().endswith(".csv"))
        else ingest_lines
    )
    if file == "-":
        report = load(sys.stdin, store, now, source="<stdin>", mapping=mapping)
    else:
        path = Path(file)
        if not path.is_file():
            raise LifecycleError(f"{file}: no such file")
        # newline="": the csv module reads quoted line breaks itself (JSON lines do not mind).
        with (
            path.open(encoding="utf-8", errors="replace", newline="") as handle,
            progress_bar(f"Ingesting {path.name}", path.stat().st_size, in_bytes=True) as update,
        ):
            report = load(counted(handle, update), store, now, source=file, mapping=mapping)
    if report.users + report.events >= BULK_LOAD:
        store.people.analyze()
    for problem in report.problems:
        err.print(f"[red]rejected[/] {escape(str(problem))}", highlight=False, soft_wrap=True)
    extra = "".join(
        f", {count} {what}"
        for count, what in (
            (report.accounts, "accounts updated"),
            (report.aliased, "events aliased"),
        )
        if count
    )
    out.print(
        f"{report.lines} lines: {report.users} users identified, {report.events} events "
        f"stored, {report.duplicates} duplicates skipped{extra}, {report.rejected} rejected",
        soft_wrap=True,
    )
    if report.problems:
        sys.exit(1)


TABLE_ROWS = 50  # a table's default --limit; JSON is complete unless --limit is given


@cli.command()
@click.option(
    "--status",
    type=click.Choice([s.value for s in Status]),
    help="Only rows in this status.",
)
@click.option("--rule", "rule_id", help="Only this rule's rows.")
@click.option("--user", "user_id", help="Only this user's rows.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help=f"Rows to show (table: default {TABLE_ROWS}; JSON: all unless given).",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
@friendly_errors
def deliveries(
    state: State,
    status: str | None,
    rule_id: str | None,
    user_id: str | None,
    limit: int | None,
    fmt: str,
) -> None:
    """List the delivery ledger, oldest first."""
    store = state.store(state.config())
    if fmt == "json":
        rows = store.reads.deliveries(status=status, rule_id=rule_id, user_id=user_id, limit=limit)
        click.echo(json.dumps(rows, indent=2, default=_json_default))
        return
    shown = limit or TABLE_ROWS
    # One more than shown: whether the caption must say that more rows match.
    rows = store.reads.deliveries(status=status, rule_id=rule_id, user_id=user_id, limit=shown + 1)
    caption = f"first {shown} rows; more match (--limit N)" if len(rows) > shown else None
    table = fitted_table(
        LEDGER_COLUMNS,
        [[_cell(row[c.header]) for c in LEDGER_COLUMNS] for row in rows[:shown]],
        out.width,
        caption=caption,
        title="Delivery ledger",
    )
    out.print(table)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(store.reads.status_counts().items()))
    out.print(f"All rows by status: {counts or 'none'}")


_FOLD = {"overflow": "fold"}
# Narrow terminals keep who, what and its state; the addresses and times go first.
LEDGER_COLUMNS = (
    Column("id", 4, 0, {"no_wrap": True}),
    Column("rule_id", 12, 0, _FOLD),
    Column("user_id", 8, 0, _FOLD),
    Column("status", 8, 0, _FOLD),
    Column("reason", 10, 2, _FOLD),
    Column("email_to", 14, 1, _FOLD),
    Column("guide_id", 10, 1, _FOLD),
    Column("fire_at", 20, 3, _FOLD),
    Column("sent_at", 20, 1, _FOLD),
)


def _cell(value: Any) -> str:
    """A table cell: rich reads cells as markup, and reasons quote template errors."""
    if isinstance(value, datetime):
        return isoformat(value) or ""
    return "" if value is None else escape(str(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat(value)
    return str(value)


@cli.command()
@click.option("--no-api", is_flag=True, help="Do not serve the HTTP API in this process.")
@click.option(
    "--full",
    is_flag=True,
    help="Evaluate every rule's whole window at every tick (incremental ticks read only what "
    "changed since each rule's last one).",
)
@click.pass_obj
@friendly_errors
def run(state: State, no_api: bool, full: bool) -> None:
    """The daemon: evaluate every scheduler.tick, send every scheduler.dispatch, and serve the
    HTTP API, until SIGTERM/Ctrl-C (a second one exits at once)."""
    from engine.daemon.scheduler import Stop
    from engine.daemon.scheduler import run as run_daemon

    logging.getLogger("lifecycle").setLevel(logging.INFO)
    config = state.config()
    _signing_key_or_exit(config, None if no_api else config.api.host)
    console_key = None if no_api else _console_key(config, config.api.host)
    app, clock = state.app(), SystemClock()
    _webhook_secret_or_exit(app)
    app.runner.incremental = not full
    stop = Stop()
    http = None
    if not no_api:
        http = create_app(
            store=app.store,
            config=app.config,
            clock=clock,
            metrics=app.metrics,
            not_ready=functools.partial(_not_ready, app, stop),
            console=_console(app, clock, console_key),
        )
    code = run_daemon(app, clock, stop=stop, http=http)
    if code != 0:
        # A send still in flight holds a worker thread that interpreter exit would wait for.
        logging.shutdown()
        os._exit(code)


def _not_ready(app: App, stop: Stop) -> str | None:
    """The daemon's own reasons for /readyz to say 503 (the API adds the database's)."""
    if stop.requested.is_set():
        return "shutting down"
    if not app.runner.rules.rules:
        return f"no rules loaded from {app.config.rules_dir}"
    return None


@cli.command()
@click.option("--host", help="Interface to listen on (default: api.host).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default: api.port).")
@click.pass_obj
@friendly_errors
def api(state: State, host: str | None, port: int | None) -> None:
    """Serve the HTTP API alone (event ingestion, unsubscribe links, in-app guides, health)."""
    config = state.config()
    host = host or config.api.host
    _signing_key_or_exit(config, host)
    console_key = _console_key(config, host)
    clock = SystemClock()
    if console_key is not None:  # the console reads rules and renders: it needs the engine
        app = state.app()
        console = _console(app, clock, console_key)
        http = create_app(store=app.store, config=config, clock=clock, console=console)
    else:
        http = create_app(store=state.store(config), config=config, clock=clock)
    serve_api(http, host, config.api.port if port is None else port)


def _webhook_secret_or_exit(app: App) -> None:
    """Before anything is sent: webhooks signed with a secret anyone knows are an error
    outside development (the webhook rules post beyond loopback), a warning within it."""
    result = require_webhook_secret(app.config, app.rules)
    if result.severity == "warning":
        logging.getLogger("lifecycle").warning("%s", result.message)


def _console_key(config: Config, host: str) -> SessionKey | None:
    """The console's session key when the config opens the console, else None; checked
    before anything opens, like api.secret_key (LifecycleError outside development)."""
    if not config.console.enabled:
        return None
    key = session_key(config, host)
    if key.warning:
        logging.getLogger("lifecycle").warning("%s", key.warning)
    return key


def _console(app: App, clock: SystemClock, key: SessionKey | None) -> ConsoleSetup | None:
    if key is None:
        return None
    return ConsoleSetup(runner=app.runner, config=app.config, clock=clock, secret=key.secret)


def _signing_key_or_exit(config: Config, host: str | None) -> None:
    """Before anything opens: a key anyone could sign with is an error outside development
    (LifecycleError, exit 1), and a warning in the log within it."""
    result = require_signing_key(config, host)
    if result.severity == "warning":
        logging.getLogger("lifecycle").warning("%s", result.message)
