"""The one fact `check` reads from the database: whether it holds any account. A read only:
it neither creates nor migrates a database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from engine.store import AccountUpsert, Store, UserUpsert, connect, creates_file
from engine.store.migrator import MIGRATIONS

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_an_empty_database_has_no_accounts(store: Store) -> None:
    assert store.reads.has_accounts() is False
    store.people.upsert_users([UserUpsert(id="u1", traits={})], NOW)
    assert store.reads.has_accounts() is False


def test_a_user_with_an_account_id_is_an_account(store: Store) -> None:
    store.people.upsert_users([UserUpsert(id="u1", traits={}, account_id="acme")], NOW)
    assert store.reads.has_accounts() is True


def test_a_group_call_alone_is_an_account(store: Store) -> None:
    store.people.upsert_accounts([AccountUpsert("acme", {"plan": "pro"})], NOW)
    assert store.reads.has_accounts() is True


def test_a_database_without_the_schema_has_no_accounts(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'bare.db'}")
    try:
        assert Store(engine).reads.has_accounts() is False
    finally:
        engine.dispose()


def test_a_schema_older_than_the_accounts_table_is_read_too(tmp_path: Path) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
        store = Store(engine)
        assert store.reads.has_accounts() is False
        with engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO users (id, account_id, traits, created_at, updated_at) "
                "VALUES ('u1', 'acme', '{}', '2026-01-01', '2026-01-01')"
            )
        assert store.reads.has_accounts() is True
    finally:
        engine.dispose()


def test_creates_file_names_only_sqlite_files_that_are_not_there(tmp_path: Path) -> None:
    there = tmp_path / "there.db"
    there.write_bytes(b"")
    assert creates_file(f"sqlite:///{tmp_path / 'missing.db'}")
    assert not creates_file(f"sqlite:///{there}")
    assert not creates_file("sqlite:///:memory:")
    assert not creates_file("sqlite://")
    assert not creates_file("postgresql+psycopg://u@127.0.0.1:5432/x")
