"""One example per command, appended to its `--help`. Kept in one table so that a command
without one fails `tests/acceptance/test_cli_terminal.py`, not a reader looking for it."""

from __future__ import annotations

import inspect

import click

EXAMPLES = {
    "": "lifecycle --config config.yaml check",
    "api": "lifecycle api --host 0.0.0.0 --port 8000",
    "check": "lifecycle check --format json",
    "db": "lifecycle db current",
    "db current": "lifecycle db current --format json",
    "db downgrade": "lifecycle db downgrade -1",
    "db history": "lifecycle db history",
    "db upgrade": "lifecycle db upgrade",
    "deliveries": "lifecycle deliveries --status unknown --limit 20",
    "demo": "lifecycle demo --users 200 --seed 7",
    "diff": "lifecycle diff --against rules.old --from 2026-03-01 --to 2026-03-08",
    "dry-run": "lifecycle dry-run --at 2026-03-03T09:00:00Z --rule welcome-sales-marketing",
    "explain": "lifecycle explain --user omar --rule organic-data-engineer-no-connection-24h",
    "guide-token": "lifecycle guide-token omar --ttl 1h",
    "hash-password": "lifecycle hash-password --user maria --role operator",
    "ingest": "lifecycle ingest events.jsonl",
    "replay": "lifecycle replay --from 2026-03-01 --to 2026-03-08 --step 1h",
    "report": "lifecycle report impact --from 2026-03-01 --to 2026-04-01",
    "report activation": "lifecycle report activation --by persona",
    "report adoption": "lifecycle report adoption --from 2026-03-01 --to 2026-04-01",
    "report all": "lifecycle report all --html report.html",
    "report cohorts": "lifecycle report cohorts --cohort activation",
    "report funnel": "lifecycle report funnel --steps email_verified,workflow_run",
    "report impact": "lifecycle report impact --rule welcome-sales-marketing --format csv",
    "report pql": "lifecycle report pql --by signup_source",
    "report questions": "lifecycle report questions --format json",
    "run": "lifecycle run",
    "send-test": "lifecycle send-test --rule welcome-explorer --user omar --to me@example.com",
    "tick": "lifecycle tick --at 2026-03-03T09:00:00Z",
}


def add_examples(group: click.Group, prefix: str = "") -> None:
    """Append each command's example to its help; a command without one is an error."""
    _add(group, prefix)
    for name, command in group.commands.items():
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            add_examples(command, path)
        else:
            _add(command, path)


def _add(command: click.Command, path: str) -> None:
    example = EXAMPLES[path]  # KeyError: give the new command its example above
    if example not in (command.help or ""):
        # \b keeps click from re-wrapping the example into the paragraph before it.
        # The docstring dedented first: click dedents by the least indented line, which
        # the example's would otherwise be.
        text = inspect.cleandoc(command.help or "")
        command.help = f"{text}\n\n\b\nExample:\n  $ {example}"
