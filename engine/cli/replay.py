"""`lifecycle replay`, `diff` and `explain`."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

from engine.app.wiring import App
from engine.cli.base import Instant, State, cli, err, friendly_errors, options, out, period_options
from engine.cli.present_whatif import (
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
from engine.clock import SystemClock, isoformat
from engine.durations import parse_duration
from engine.errors import DurationError
from engine.rules.language import RuleSet, load_rules
from engine.whatif.explain import explain as run_explain
from engine.whatif.replay import Period, Timeline, by_persona, by_rule, diff, diff_totals, summarize
from engine.whatif.replay import replay as run_replay

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


_replay_options = options(
    period_options("First tick.", "Last tick (included).", required=True),
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
    click.option(
        "--full",
        is_flag=True,
        help="Evaluate every rule in full at every tick (the slow oracle of incremental ticks).",
    ),
)


def _rules_from(app: App, directory: Path | None) -> RuleSet:
    """The rule set in `directory` (validated like the config's), or the config's."""
    if directory is None:
        return app.rules
    return load_rules(
        directory,
        default_expires=app.config.defaults.expires,
        templates=app.renderer.names(),
        activation_event=app.config.reports.activation_event,
        webhooks=app.config.webhook_policy(),
    )


def _replayed(
    app: App, rules: RuleSet, period: Period, with_history: bool, full: bool = False
) -> Timeline:
    runner = app.runner.using(rules=rules)
    runner.incremental = not full
    label = f"Replaying {period.start:%Y-%m-%d %H:%M} → {period.end:%Y-%m-%d %H:%M}"
    # On a terminal only (rich draws nothing elsewhere): ticks done, of how many, and the ETA.
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("ticks"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=period.count)
        timeline = run_replay(
            runner,
            period,
            with_history=with_history,
            progress=lambda done: bar.update(task, completed=done),
        )
    for rule_id, ticks in sorted(timeline.errors.items()):
        err.print(f"[red]warning[/]: rule {rule_id} failed to evaluate in {ticks} tick(s)")
    return timeline


@cli.command("replay")
@_replay_options
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
    full: bool,
    rules_dir: Path | None,
) -> None:
    """What the daemon would have sent over a past period; writes nothing."""
    period = Period(start, end, step)
    app = state.app()
    timeline = _replayed(app, _rules_from(app, rules_dir), period, with_history, full)
    if fmt == "json":
        click.echo(json.dumps(timeline_json(timeline, with_history=with_history), indent=2))
        return
    if not timeline.entries:
        out.print(f"Nothing would have fired between {isoformat(start)} and {isoformat(end)}.")
        return
    out.print(timeline_table(timeline.entries, limit=limit, width=out.width))
    out.print(summary_table("Per rule", summarize(timeline.entries, by_rule)))
    out.print(summary_table("Per persona", summarize(timeline.entries, by_persona)))


@cli.command("diff")
@_replay_options
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
    full: bool,
    rules_dir: Path | None,
    against_dir: Path,
) -> None:
    """Replay two rule sets and list the messages gained, lost and moved; writes nothing."""
    period = Period(start, end, step)
    app = state.app()
    proposed, baseline = _rules_from(app, rules_dir), _rules_from(app, against_dir)
    before = _replayed(app, baseline, period, with_history, full)
    after = _replayed(app, proposed, period, with_history, full)
    changes = diff(before.entries, after.entries)
    totals = diff_totals(changes)
    if fmt == "json":
        click.echo(json.dumps(diff_json(changes, totals, after), indent=2))
        return
    if not changes:
        out.print("No message changes between the two rule sets over this period.")
        return
    out.print(diff_table(changes, limit=limit, width=out.width))
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
