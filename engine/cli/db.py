"""`lifecycle db`: the schema's version, and moving it, over the packaged migrations and the
team's own (`database.migrations`). The statements run in engine.store; this only prints."""

from __future__ import annotations

import json
import sys

import click
from rich.markup import escape
from rich.table import Table

from engine.app.wiring import open_schema
from engine.cli.base import State, cli, err, friendly_errors, out
from engine.store import Revision


@cli.group()
def db() -> None:
    """The database schema: which revision it is at, its history, and moving it up or down.
    Every command also upgrades the schema when it first opens the database."""


@db.command("upgrade")
@click.argument("revision", default="heads")
@click.pass_obj
@friendly_errors
def db_upgrade(state: State, revision: str) -> None:
    """Apply the migrations up to REVISION (default: heads, the newest of every branch)."""
    with open_schema(state.config()) as schema:
        before = schema.current()
        schema.upgrade(revision)
        after = schema.current()
    _moved(before, after)


@db.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@click.pass_obj
@friendly_errors
def db_downgrade(state: State, revision: str) -> None:
    """Revert migrations down to REVISION: an id (0006), a relative step (-1, or
    BRANCH@-1 with several branches), or base (drops every table: all data is lost)."""
    with open_schema(state.config()) as schema:
        before = schema.current()
        schema.downgrade(revision)
        after = schema.current()
    _moved(before, after)


@db.command("current")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
@friendly_errors
def db_current(state: State, fmt: str) -> None:
    """The revision the database is at (one per branch), and whether it is up to date; exit
    1 when migrations are pending, so a deploy script can check before it starts replicas."""
    with open_schema(state.config(), read_only=True) as schema:
        current, heads = schema.current(), schema.heads()
    pending = set(current) != set(heads)
    if fmt == "json":
        click.echo(json.dumps({"current": list(current), "heads": list(heads), "pending": pending}))
    else:
        out.print(f"current: {', '.join(current) or '(empty database)'}", highlight=False)
        out.print(f"heads:   {', '.join(heads)}", highlight=False)
        if pending:
            err.print("[yellow]migrations pending[/]: run `lifecycle db upgrade`")
    if pending:
        sys.exit(1)


@db.command("history")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
@friendly_errors
def db_history(state: State, fmt: str) -> None:
    """Every revision, newest first, with the ones the database has applied marked."""
    with open_schema(state.config(), read_only=True) as schema:
        revisions = schema.history()
    if fmt == "json":
        click.echo(json.dumps([_json(r) for r in revisions], indent=2))
        return
    table = Table(title="Schema history (newest first)", header_style="bold")
    table.add_column("Revision", no_wrap=True)
    table.add_column("Applied", no_wrap=True)
    table.add_column("Down", no_wrap=True)
    table.add_column("Message", overflow="fold", ratio=1)
    for r in revisions:
        rev = r.id + (" [cyan](head)[/]" if r.head else "") + _branches(r)
        table.add_row(
            rev, "[green]yes[/]" if r.applied else "no", ", ".join(r.down), escape(r.message)
        )
    out.print(table)


def _branches(revision: Revision) -> str:
    return f" [dim]{', '.join(revision.branches)}[/]" if revision.branches else ""


def _json(revision: Revision) -> dict[str, object]:
    return {
        "revision": revision.id,
        "down_revision": list(revision.down),
        "branches": list(revision.branches),
        "message": revision.message,
        "head": revision.head,
        "applied": revision.applied,
        "location": str(revision.location),
    }


def _moved(before: tuple[str, ...], after: tuple[str, ...]) -> None:
    if before == after:
        out.print(f"already at {', '.join(after) or '(empty database)'}", highlight=False)
    else:
        was, now = ", ".join(before) or "(empty)", ", ".join(after) or "(empty: base)"
        out.print(f"[green]migrated[/]: {was} → {now}", highlight=False)
