"""The CLI in an 80-column terminal: tables keep whole values and say what they hid;
choices are checked with the valid values listed; --limit caps tables, not JSON; every
command's --help shows an example that parses."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.cli.examples import EXAMPLES
from tests.acceptance.conftest import DATA, Project


@pytest.fixture
def ticked(sqlite_project: Project) -> Project:
    sqlite_project.run("ingest", str(DATA / "airtouch.jsonl"))
    for day in range(2, 6):  # enough rows for --limit to cut
        sqlite_project.run("tick", "--at", f"2026-03-0{day}T09:01:00Z")
    return sqlite_project


def run80(project: Project, *args: str) -> str:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(
        cli, ["--config", str(project.config_file), *args], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def test_dry_run_at_80_columns_hides_columns_instead_of_slivers(sqlite_project: Project) -> None:
    sqlite_project.run("ingest", str(DATA / "airtouch.jsonl"))
    table = run80(sqlite_project, "dry-run", "--at", "2026-03-05T09:00:00Z")
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "Pers/" not in table
    assert "Persona/source" not in table.split("hidden")[0]
    assert "hidden at 80 columns: Persona/source, Guide" in " ".join(table.split())


def test_deliveries_at_80_columns(ticked: Project) -> None:
    table = run80(ticked, "deliveries")
    assert max(len(line) for line in table.splitlines()) <= 80
    assert "hidden at 80 columns:" in " ".join(table.split())
    assert "sent" in table


def test_a_status_typo_lists_the_valid_ones(sqlite_project: Project) -> None:
    result = sqlite_project.run("deliveries", "--status", "sen", ok=False)
    assert result.exit_code == 2
    assert "'sen' is not one of 'pending', 'claimed', 'sending', 'retrying', 'sent'" in (
        result.stderr
    )


def test_limit_caps_the_table_json_is_complete_unless_given(ticked: Project) -> None:
    everything = ticked.json("deliveries")
    assert len(everything) > 2
    table = ticked.run("deliveries", "--limit", "2").stdout
    assert "first 2 rows; more match" in " ".join(table.split())
    limited = json.loads(ticked.run("deliveries", "--limit", "2", "--format", "json").stdout)
    assert limited == everything[:2]
    dry = ticked.run("dry-run", "--at", "2026-03-20T09:00:00Z", "--format", "json", "--limit", "1")
    assert len(json.loads(dry.stdout)) <= 1


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = [(prefix, group)]
    for name, command in sorted(group.commands.items()):
        path = f"{prefix} {name}".strip()
        if isinstance(command, click.Group):
            found += commands(command, path)
        else:
            found.append((path, command))
    return found


@pytest.mark.parametrize("path", [path for path, _ in commands(cli)])
def test_every_help_shows_an_example_that_parses(path: str) -> None:
    result = CliRunner().invoke(cli, [*path.split(), "--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert f"Example:\n    $ {EXAMPLES[path]}" in result.stdout
    # The example's arguments are valid for the command (parsed, not run).
    words = EXAMPLES[path].split()
    assert words[: 1 + len(path.split())] == ["lifecycle", *path.split()]
    command: click.Command = cli
    context = None
    for name in path.split():
        assert isinstance(command, click.Group)
        context = click.Context(command, info_name=name, parent=context)
        found = command.get_command(context, name)
        assert found is not None
        command = found
    command.make_context(path or "lifecycle", words[1 + len(path.split()) :], parent=context)
