"""The `lifecycle` command line. The clock is read here, once per command, and passed down."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
from engine.durations import parse_duration
from engine.errors import DurationError, LifecycleError, ProblemsError
from engine.explain import explain as run_explain
from engine.ingest import ingest_csv, ingest_lines
from engine.present import preview_json, preview_summary, preview_table, tick_table
from engine.present_replay import (
    diff_json,
    diff_table,
    diff_totals_table,
    explain_json,
    explain_table,
    explain_verdict,
    summary_table,
    timeline_json,
    timeline_table,
)
from engine.replay import Period, Timeline, by_persona, by_rule, diff, diff_totals, summarize
from engine.replay import replay as run_replay
from engine.reports import catalog as report_catalog
from engine.reports.context import ReportContext
from engine.reports.html import render_html
from engine.reports.model import Report
from engine.reports.output import csv_reports, json_report, rich_report
from engine.reports.periods import Period as ReportPeriod
from engine.rules import RuleSet, load_rules
from engine.schema import metadata
from engine.segment import TraitMapping
from engine.serve import serve_api
from engine.simulate import STEP as SIMULATION_STEP
from engine.simulate import Response
from engine.simulate import simulate as run_simulation
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
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            report = load(handle, store, now, source=file, mapping=mapping)
    for problem in report.problems:
        err.print(f"[red]rejected[/] {problem}", highlight=False, soft_wrap=True)
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
@click.option(
    "--simulate",
    type=click.IntRange(1, 365),
    metavar="DAYS",
    help="Instead: signups over the past DAYS, the engine ticking every simulated hour, and "
    "users who respond to what they are sent.",
)
@click.option(
    "--effect",
    type=click.FloatRange(-1, 1),
    default=0.15,
    show_default=True,
    help="With --simulate: how much a message raises the chance of its goal.",
)
@click.option(
    "--baseline",
    type=click.FloatRange(0, 1),
    default=0.10,
    show_default=True,
    help="With --simulate: the chance of the goal without a message.",
)
@click.pass_obj
@friendly_errors
def demo(
    state: State,
    n: int,
    seed: int,
    days: int,
    reset: bool,
    tour: bool,
    simulate: int | None,
    effect: float,
    baseline: float,
) -> None:
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
    if simulate:
        _simulate(app, n, seed, simulate, baseline, effect)
        return
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
    waiting = app.store.status_counts().get("pending", 0)
    if waiting:
        out.print(
            f"{waiting} more emails wait for quiet hours to end in their users' timezones "
            "(mail.quiet_hours); the daemon sends them then."
        )
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
    """Serve the HTTP API alone (event ingestion, unsubscribe links, in-app guides, health)."""
    config = state.config()
    store = state.store(config)
    http = create_app(store=store, config=config, clock=SystemClock())
    serve_api(http, host or config.api.host, config.api.port if port is None else port)


# ---- reports ---------------------------------------------------------------------------

_REPORT_OPTIONS = (
    click.option(
        "--from",
        "start",
        type=Instant(),
        help="Period start, inclusive: signups (impact: sends). Default: the beginning.",
    ),
    click.option("--to", "end", type=Instant(), help="Period end, excluded (default: now)."),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
    ),
)
_BY_OPTION = click.option(
    "--by", type=click.Choice(["persona", "signup_source"]), help="Break the tables down."
)


def _report_options(command: F) -> F:
    for option in reversed(_REPORT_OPTIONS):
        command = option(command)
    return command


@cli.group()
def report() -> None:
    """Read-only reports from the ledger and the events; `report all --html FILE` writes
    them all as one self-contained page. The README defines every number."""


def _reports(
    state: State,
    name: str | None,
    start: datetime | None,
    end: datetime | None,
    **options: Any,
) -> tuple[list[Report], datetime]:
    """Build one report (or all when `name` is None); the clock is read here, once."""
    config = state.config()
    rule_ids = options.pop("rule_ids", ())
    wants_rules = name in (None, "impact")
    rules = report_catalog.rules_for(config, rule_ids) if wants_rules else ()
    now = SystemClock().now().replace(microsecond=0)  # reports speak in whole seconds
    try:
        period = ReportPeriod(start, end or now, now)
    except ValueError as exc:
        raise LifecycleError(str(exc)) from None
    ctx = ReportContext(state.store(config), config.reports, period, rules=rules, **options)
    if name is None:
        return report_catalog.build_all(ctx), now
    return [report_catalog.build(name, ctx)], now


def _emit(reports: list[Report], fmt: str, *, single: bool) -> None:
    if fmt == "json":
        data = [json_report(r) for r in reports]
        click.echo(json.dumps(data[0] if single else data, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        click.echo(csv_reports(reports), nl=False)
    else:
        for index, item in enumerate(reports):
            if index:
                out.rule()
            out.print(rich_report(item, width=out.width))


@report.command("impact")
@_report_options
@_BY_OPTION
@click.option("--rule", "rule_ids", multiple=True, help="Only this rule (repeatable).")
@click.pass_obj
@friendly_errors
def report_impact(
    state: State,
    start: datetime | None,
    end: datetime | None,
    fmt: str,
    by: str | None,
    rule_ids: tuple[str, ...],
) -> None:
    """Per rule: goal conversion of treated vs held-out users, lift, 95% CI, p-value."""
    reports, _ = _reports(state, "impact", start, end, by=by, rule_ids=rule_ids)
    _emit(reports, fmt, single=True)


@report.command("questions")
@_report_options
@_BY_OPTION
@click.pass_obj
@friendly_errors
def report_questions(
    state: State, start: datetime | None, end: datetime | None, fmt: str, by: str | None
) -> None:
    """The playbook's burning questions, for the users who signed up in the period."""
    _emit(_reports(state, "questions", start, end, by=by)[0], fmt, single=True)


@report.command("activation")
@_report_options
@_BY_OPTION
@click.pass_obj
@friendly_errors
def report_activation(
    state: State, start: datetime | None, end: datetime | None, fmt: str, by: str | None
) -> None:
    """Product activation rate and time to first value, per signup week."""
    _emit(_reports(state, "activation", start, end, by=by)[0], fmt, single=True)


@report.command("adoption")
@_report_options
@_BY_OPTION
@click.pass_obj
@friendly_errors
def report_adoption(
    state: State, start: datetime | None, end: datetime | None, fmt: str, by: str | None
) -> None:
    """Adoption rate (active / signed up) and feature adoption rates."""
    _emit(_reports(state, "adoption", start, end, by=by)[0], fmt, single=True)


@report.command("cohorts")
@_report_options
@click.option(
    "--cohort",
    type=click.Choice(["signup", "activation"]),
    default="signup",
    show_default=True,
    help="Group users by the month they signed up or activated.",
)
@click.pass_obj
@friendly_errors
def report_cohorts(
    state: State, start: datetime | None, end: datetime | None, fmt: str, cohort: str
) -> None:
    """Monthly cohorts: retention by months since, 2nd-month and 12-month retention, churn."""
    _emit(_reports(state, "cohorts", start, end, cohort=cohort)[0], fmt, single=True)


@report.command("funnel")
@_report_options
@_BY_OPTION
@click.option("--steps", help="Comma-separated events, in order (default: reports.funnel).")
@click.pass_obj
@friendly_errors
def report_funnel(
    state: State,
    start: datetime | None,
    end: datetime | None,
    fmt: str,
    by: str | None,
    steps: str | None,
) -> None:
    """Step conversion and time between steps for an ordered list of events."""
    names = tuple(s.strip() for s in (steps or "").split(",") if s.strip())
    _emit(_reports(state, "funnel", start, end, by=by, steps=names)[0], fmt, single=True)


@report.command("all")
@_report_options
@_BY_OPTION
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False),
    help="Write every report as one self-contained HTML page (tables and charts) to FILE.",
)
@click.pass_obj
@friendly_errors
def report_all(
    state: State,
    start: datetime | None,
    end: datetime | None,
    fmt: str,
    by: str | None,
    html_file: str | None,
) -> None:
    """Every report (--by applies where it makes sense); --html FILE writes one offline page."""
    reports, now = _reports(state, None, start, end, by=by)
    if html_file is None:
        _emit(reports, fmt, single=False)
        return
    Path(html_file).write_text(render_html(reports, generated_at=now), encoding="utf-8")
    tables = sum(len(r.tables) for r in reports)
    out.print(f"Wrote {html_file}: {len(reports)} reports, {tables} tables.", highlight=False)


# ---- replay, diff and explain -------------------------------------------------------------


class Step(click.ParamType):  # type: ignore[type-arg]
    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(str(value))
        except DurationError as exc:
            self.fail(str(exc).replace("bad duration", "bad step"), param, ctx)


def _period_options(command: F) -> F:
    options = [
        click.option("--from", "start", type=Instant(), required=True, help="First tick."),
        click.option("--to", "end", type=Instant(), required=True, help="Last tick (included)."),
        click.option(
            "--step", type=Step(), default="15m", show_default=True, help="Time between ticks."
        ),
        click.option(
            "--with-history",
            is_flag=True,
            help="Start from the real ledger as of --from instead of an empty one.",
        ),
        click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table"),
        click.option("--limit", type=int, help="Table rows to show (JSON is always complete)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _rules_from(app: App, directory: Path | None) -> RuleSet:
    """The rule set in `directory` (validated like the config's), or the config's."""
    if directory is None:
        return app.rules
    return load_rules(
        directory, default_expires=app.config.defaults.expires, templates=app.renderer.names()
    )


def _replayed(app: App, rules: RuleSet, period: Period, with_history: bool) -> Timeline:
    with err.status(f"Replaying {period.start:%Y-%m-%d %H:%M} → {period.end:%Y-%m-%d %H:%M}…"):
        timeline = run_replay(app.runner.using(rules=rules), period, with_history=with_history)
    for rule_id, ticks in sorted(timeline.errors.items()):
        err.print(f"[red]warning[/]: rule {rule_id} failed to evaluate in {ticks} tick(s)")
    return timeline


@cli.command("replay")
@_period_options
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path),
    help="Replay the rules in this directory instead of the config's.",
)
@click.pass_obj
@friendly_errors
def replay_command(
    state: State,
    start: datetime,
    end: datetime,
    step: timedelta,
    with_history: bool,
    fmt: str,
    limit: int | None,
    rules_dir: Path | None,
) -> None:
    """What the daemon would have sent over a past period; writes nothing."""
    period = Period(start, end, step)
    app = state.app()
    timeline = _replayed(app, _rules_from(app, rules_dir), period, with_history)
    if fmt == "json":
        click.echo(json.dumps(timeline_json(timeline, with_history=with_history), indent=2))
        return
    if not timeline.entries:
        out.print(f"Nothing would have fired between {isoformat(start)} and {isoformat(end)}.")
        return
    out.print(timeline_table(timeline.entries, limit=limit))
    out.print(summary_table("Per rule", summarize(timeline.entries, by_rule)))
    out.print(summary_table("Per persona", summarize(timeline.entries, by_persona)))


@cli.command("diff")
@_period_options
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(path_type=Path),
    help="The proposed rules (default: the config's).",
)
@click.option(
    "--against",
    "against_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="The baseline rules to compare with.",
)
@click.pass_obj
@friendly_errors
def diff_command(
    state: State,
    start: datetime,
    end: datetime,
    step: timedelta,
    with_history: bool,
    fmt: str,
    limit: int | None,
    rules_dir: Path | None,
    against_dir: Path,
) -> None:
    """Replay two rule sets and list the messages gained, lost and moved; writes nothing."""
    period = Period(start, end, step)
    app = state.app()
    proposed, baseline = _rules_from(app, rules_dir), _rules_from(app, against_dir)
    before = _replayed(app, baseline, period, with_history)
    after = _replayed(app, proposed, period, with_history)
    changes = diff(before.entries, after.entries)
    totals = diff_totals(changes)
    if fmt == "json":
        click.echo(json.dumps(diff_json(changes, totals, after), indent=2))
        return
    if not changes:
        out.print("No message changes between the two rule sets over this period.")
        return
    out.print(diff_table(changes, limit=limit))
    out.print(diff_totals_table(totals))


@cli.command("explain")
@click.option("--user", "user_id", required=True, help="The user id.")
@click.option("--rule", "rule_id", required=True, help="The rule id.")
@click.option("--at", "at", type=Instant(), help="Evaluate as of this time (default now).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
@friendly_errors
def explain_command(
    state: State, user_id: str, rule_id: str, at: datetime | None, fmt: str
) -> None:
    """Whether a rule fires for a user at a time and, if not, which condition fails."""
    app = state.app()
    explanation = run_explain(app.runner, rule_id, user_id, at or SystemClock().now())
    if fmt == "json":
        click.echo(json.dumps(explain_json(explanation), indent=2, ensure_ascii=False))
        return
    out.print(explain_table(explanation))
    out.print(explain_verdict(explanation), highlight=False, soft_wrap=True)


def _simulate(app: App, n: int, seed: int, days: int, baseline: float, effect: float) -> None:
    """`demo --simulate`: a history of `days` ending now, the engine ticking every hour."""
    end = SystemClock().now().replace(second=0, microsecond=0)
    period = Period(end - timedelta(days=days), end, SIMULATION_STEP)
    population = demo_data.generate(n, seed=seed, now=end, days=days)
    with err.status(f"Simulating {days} days of {n} users, one tick per hour…"):
        result = run_simulation(app.runner, population, period, Response(baseline, effect, seed))
    out.print(_population_table(app))
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(app.store.status_counts().items()))
    out.print(f"{result.ticks} ticks from {isoformat(period.start)}; ledger rows: {counts}")
    out.print(
        f"{sum(result.goals.values())} goal events performed in response "
        f"(baseline {baseline:.0%}, true effect of a message +{effect:.0%})"
    )


def main() -> None:
    cli(prog_name="lifecycle")
