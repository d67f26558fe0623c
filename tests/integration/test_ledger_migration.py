"""Migration 0006 (the ledger key covers the scope and the occurrence) on a ledger that holds
v1 rows, on SQLite and PostgreSQL: every v1 row keeps its meaning (its user as subject, ''
as occurrence), so a v1 rule does not fire again after the upgrade; the downgrade keeps the
v1 rows and drops only what the old key cannot hold."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError

from engine.rules.language import Rule
from engine.sql.candidates import candidates
from engine.store import Store, UserUpsert, connect
from engine.store.migrator import MIGRATIONS
from tests.conftest import NOW, PG_ADMIN_URL, _pg_unavailable


def alembic(engine: Engine, action: str, revision: str) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with no tables at all."""
    if request.param == "sqlite":
        engine = connect(f"sqlite:///{tmp_path / 'old.db'}")
        yield engine
        engine.dispose()
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"lifecycle_migration_{uuid.uuid4().hex[:10]}"
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


V1_ROW = (
    "INSERT INTO deliveries (rule_id, user_id, status, anchor_at, fire_at, holdout, attempts,"
    " created_at, updated_at) VALUES ('welcome', 'u1', 'sent', :t, :t, false, 1, :t, :t)"
)


def test_v1_rows_keep_their_meaning_across_the_upgrade(empty: Engine) -> None:
    alembic(empty, "upgrade", "0005")
    with empty.begin() as connection:
        connection.execute(text(V1_ROW), {"t": NOW.replace(tzinfo=None)})
    alembic(empty, "upgrade", "head")
    store = Store(empty)
    (row,) = store.reads.deliveries()
    assert (row["subject"], row["occurrence"]) == ("u1", "")
    store.people.upsert_users([UserUpsert("u1", {}, signed_up_at=NOW)], NOW)
    rule = Rule.model_validate({"id": "welcome", "when": {"expires": "1d"}, "send": {"email": "t"}})
    assert list(store.ledger.candidates(candidates(rule, NOW + timedelta(hours=1)))) == []
    with pytest.raises(IntegrityError), empty.begin() as connection:
        connection.execute(text(V1_ROW), {"t": NOW.replace(tzinfo=None)})


def test_the_downgrade_keeps_v1_rows_and_drops_the_rest(empty: Engine) -> None:
    alembic(empty, "upgrade", "head")
    t = NOW.replace(tzinfo=None)
    with empty.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO deliveries (rule_id, user_id, subject, occurrence, status, anchor_at,"
                " fire_at, holdout, attempts, created_at, updated_at) VALUES"
                " ('welcome', 'u1', 'u1', '', 'sent', :t, :t, false, 1, :t, :t),"
                " ('welcome', 'u1', 'u1', '#2', 'sent', :t, :t, false, 1, :t, :t),"
                " ('nudge', 'u2', 'account:A', '', 'sent', :t, :t, false, 1, :t, :t)"
            ),
            {"t": t},
        )
    alembic(empty, "downgrade", "0005")
    with empty.connect() as connection:
        rows = connection.execute(text("SELECT rule_id, user_id FROM deliveries")).all()
    assert [tuple(r) for r in rows] == [("welcome", "u1")]
    alembic(empty, "upgrade", "head")
