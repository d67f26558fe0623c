"""`Schema` over the packaged migrations and a team's own directory, on SQLite and
PostgreSQL: upgrade to every branch's head, downgrade one branch, and the first-open path
(`migrate`) applying the team's revisions too."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect

from engine.store import MigrationError, Schema, migrate
from engine.store.migrator import PACKAGED_VERSIONS

# The fixture of an engine on a database with no tables at all, on both databases.
from tests.integration.test_ledger_migration import empty

__all__ = ["empty"]  # a fixture: used by name, not by reference

# The packaged revisions newest first, from the files: a new migration changes no test here.
PACKAGED = sorted(
    (f.name[:4] for f in PACKAGED_VERSIONS.glob("[0-9][0-9][0-9][0-9]_*.py")), reverse=True
)
PACKAGED_HEAD, PACKAGED_PREVIOUS = PACKAGED[0], PACKAGED[1]
TEAM_REVISION = '''"""Team notes: a table of the team's own.

Revision ID: team0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "team0001"
down_revision = None
branch_labels = ("team",)
depends_on = "0001"


def upgrade() -> None:
    op.create_table("team_notes", sa.Column("id", sa.Integer, primary_key=True))


def downgrade() -> None:
    op.drop_table("team_notes")
'''


@pytest.fixture
def team_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "team migrations"  # a space: paths are not split on it
    directory.mkdir()
    (directory / "team0001_notes.py").write_text(TEAM_REVISION)
    return directory


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_applies_the_packaged_and_the_team_branches(empty: Engine, team_dir: Path) -> None:
    schema = Schema(empty, [team_dir])
    assert schema.current() == ()
    assert schema.heads() == (PACKAGED_HEAD, "team0001")
    schema.upgrade()
    assert schema.current() == (PACKAGED_HEAD, "team0001")
    assert {"team_notes", "deliveries"} <= tables(empty)
    history = {r.id: r for r in schema.history()}
    assert history["team0001"].branches == ("team",)
    assert history["team0001"].location == team_dir.resolve()
    assert all(r.applied for r in history.values())


def test_downgrading_the_team_branch_leaves_the_engine_schema(
    empty: Engine, team_dir: Path
) -> None:
    schema = Schema(empty, [team_dir])
    schema.upgrade()
    schema.downgrade("team@base")
    assert schema.current() == (PACKAGED_HEAD,)
    assert "team_notes" not in tables(empty)
    assert "deliveries" in tables(empty)
    migrate(empty, [team_dir])  # the first-open path applies the team's revision again
    assert "team_notes" in tables(empty)


def test_downgrade_by_one_step_and_back(empty: Engine) -> None:
    schema = Schema(empty)
    schema.upgrade()
    schema.downgrade("-1")
    assert schema.current() == (PACKAGED_PREVIOUS,)
    assert not next(r for r in schema.history() if r.id == PACKAGED_HEAD).applied
    migrate(empty)
    assert schema.current() == (PACKAGED_HEAD,)


def test_an_unknown_revision_lists_the_known_ones(empty: Engine) -> None:
    with pytest.raises(
        MigrationError,
        match=rf"unknown revision 'nope' \(known: {PACKAGED_HEAD}, {PACKAGED_PREVIOUS}",
    ):
        Schema(empty).upgrade("nope")


def test_a_database_migrated_with_a_team_directory_needs_it(empty: Engine, team_dir: Path) -> None:
    Schema(empty, [team_dir]).upgrade()
    with pytest.raises(MigrationError, match=r"team0001.*database\.migrations"):
        Schema(empty).history()
    with pytest.raises(MigrationError, match=r"team0001.*database\.migrations"):
        migrate(empty)  # what every command does first: a clear error, not a traceback


def test_a_missing_migrations_directory_is_named(empty: Engine, tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match=r"database\.migrations: .*nowhere: no such"):
        Schema(empty, [tmp_path / "nowhere"])
