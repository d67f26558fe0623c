"""`Schema` over the packaged migrations and a team's own directory, on SQLite and
PostgreSQL: upgrade to every branch's head, downgrade one branch, and the first-open path
(`migrate`) applying the team's revisions too."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from engine.store import MigrationError, Schema, connect, migrate
from tests.conftest import PG_ADMIN_URL, _pg_unavailable

PACKAGED_HEAD = "0009"
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


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with no tables at all."""
    if request.param == "sqlite":
        engine = connect(f"sqlite:///{tmp_path / 'empty.db'}")
        yield engine
        engine.dispose()
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"lifecycle_schema_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "missing"
        admin.dispose()
        _pg_unavailable(f"{PG_ADMIN_URL} could not be used: {type(exc).__name__}: {exc}")
    engine = connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


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
    assert schema.current() == ("0007",)
    assert not next(r for r in schema.history() if r.id == PACKAGED_HEAD).applied
    migrate(empty)
    assert schema.current() == (PACKAGED_HEAD,)


def test_an_unknown_revision_lists_the_known_ones(empty: Engine) -> None:
    with pytest.raises(MigrationError, match=r"unknown revision 'nope' \(known: 0009, 0007"):
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
