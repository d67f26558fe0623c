"""The tick keeps the ledger's planner statistics fresh: after a tick that wrote many rows it
asks the store to ANALYZE the ledger (PostgreSQL runs it; SQLite has nothing to refresh), and
after an ordinary tick it does not."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.rules.language import load_rules
from engine.runner import Runner
from engine.store import Store, UserUpsert
from engine.store.ledger import Ledger

RULES = """
rules:
  - id: tour
    send: {guide: tour}
"""


@pytest.fixture
def runner(tmp_path: Path, store: Store) -> Runner:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "pack.yaml").write_text(RULES)
    (tmp_path / "templates").mkdir()
    renderer = Renderer(tmp_path / "templates")
    rules = load_rules(
        tmp_path / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    config = Config.model_validate({"base_dir": tmp_path})
    return Runner(
        store=store,
        rules=rules,
        renderer=renderer,
        transport=RecordingTransport(),
        config=config,
    )


def signups(store: Store, now: datetime, count: int) -> None:
    users = [
        UserUpsert(id=f"u{n:05d}", traits={}, signed_up_at=now - timedelta(hours=1))
        for n in range(count)
    ]
    store.people.upsert_users(users, now)


def spy(store: Store, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record each call of the store's analyze_ledger (and what it returned)."""
    calls: list[bool] = []
    original = store.ledger.analyze_ledger

    def recording() -> bool:
        ran = original()
        calls.append(ran)
        return ran

    monkeypatch.setattr(store.ledger, "analyze_ledger", recording)
    return calls


def manual_analyzes(store: Store, table: str = "deliveries") -> int:
    statement = text("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = :table")
    with store.engine.connect() as connection:
        return int(connection.execute(statement, {"table": table}).scalar_one())


def test_a_large_write_refreshes_the_ledger_statistics(
    runner: Runner, store: Store, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    signups(store, now, Ledger.ANALYZE_AFTER_ROWS)
    calls = spy(store, monkeypatch)
    before = manual_analyzes(store) if store.dialect == "postgresql" else 0

    report = runner.tick(now, dispatch=False)

    assert sum(report.written.values()) == Ledger.ANALYZE_AFTER_ROWS
    assert calls == [store.dialect == "postgresql"]
    if store.dialect == "postgresql":
        assert manual_analyzes(store) == before + 1


def test_a_small_write_leaves_the_statistics_to_autovacuum(
    runner: Runner, store: Store, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    signups(store, now, Ledger.ANALYZE_AFTER_ROWS - 1)
    calls = spy(store, monkeypatch)

    report = runner.tick(now, dispatch=False)
    again = runner.tick(now + timedelta(minutes=5), dispatch=False)

    assert sum(report.written.values()) == Ledger.ANALYZE_AFTER_ROWS - 1
    assert sum(again.written.values()) == 0
    assert calls == []


def test_a_bulk_load_refreshes_the_people_statistics(store: Store, now: datetime) -> None:
    """`demo` and a large `ingest` call it after loading: a new table is planned as empty."""
    signups(store, now, 10)
    before = manual_analyzes(store, "users") if store.dialect == "postgresql" else 0

    ran = store.people.analyze()

    assert ran is (store.dialect == "postgresql")
    if store.dialect == "postgresql":
        assert manual_analyzes(store, "users") == before + 1
