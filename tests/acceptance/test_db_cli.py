"""`lifecycle db` as an operator meets it: current, upgrade, downgrade, history, a team's
own migrations directory from the config, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.conftest import Project, make_project
from tests.integration.test_schema_migrations import TEAM_REVISION


def test_current_upgrade_downgrade_history(sqlite_project: Project) -> None:
    database = sqlite_project.directory / "lifecycle.db"
    empty = sqlite_project.run("db", "current", ok=False)
    assert empty.exit_code == 1  # pending: a deploy script can wait for `db upgrade`
    assert "current: (empty database)" in empty.stdout
    assert not database.exists()  # asking did not create it
    assert "migrated: (empty) → 0009" in sqlite_project.run("db", "upgrade").stdout
    assert json.loads(sqlite_project.run("db", "current", "--format", "json").stdout) == {
        "current": ["0009"],
        "heads": ["0009"],
        "pending": False,
    }
    assert "0009 → 0007" in sqlite_project.run("db", "downgrade", "-1").stdout
    history = json.loads(sqlite_project.run("db", "history", "--format", "json").stdout)
    assert [(r["revision"], r["applied"]) for r in history[:2]] == [
        ("0009", False),
        ("0007", True),
    ]
    sqlite_project.run("deliveries")  # any command upgrades on first open
    assert json.loads(sqlite_project.run("db", "current", "--format", "json").stdout)[
        "current"
    ] == ["0009"]


def test_a_team_directory_from_the_config_is_a_branch(tmp_path: Path) -> None:
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "team0001_notes.py").write_text(TEAM_REVISION)
    # Relative to the config file, like every path in it.
    project = make_project(
        tmp_path, "sqlite:///lifecycle.db", database={"migrations": ["migrations"]}
    )
    project.run("db", "upgrade")
    current = json.loads(project.run("db", "current", "--format", "json").stdout)
    assert current["current"] == ["0009", "team0001"]
    table = project.run("db", "history").stdout
    assert "team0001 (head) team" in table
    downgraded = project.run("db", "downgrade", "team@base").stdout
    assert "migrated: 0009, team0001 → 0009" in downgraded


def test_errors_name_what_is_wrong(tmp_path: Path) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db", database={"migrations": ["gone"]})
    result = project.run("db", "upgrade", ok=False)
    assert result.exit_code == 1
    assert "database.migrations:" in result.stderr
    assert "gone: no such directory" in result.stderr
    (tmp_path / "p").mkdir()
    plain = make_project(tmp_path / "p", "sqlite:///lifecycle.db")
    result = plain.run("db", "downgrade", "0042", ok=False)
    assert result.exit_code == 1
    assert "unknown revision '0042' (known: 0009, 0007" in result.stderr
