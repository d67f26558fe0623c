"""Store contract tests: the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Select, text
from sqlalchemy.sql.elements import ColumnElement

from engine.decide.firing import Candidate, decide
from engine.model import Status
from engine.rules.language import Rule
from engine.sql.candidates import candidates as candidates_query
from engine.sql.ledger import Settings, flags_select, ledger_insert
from engine.sql.schema import metadata
from engine.store import EventRecord, Store, UserUpsert, connect, migrate


def _rule(**send: str) -> Rule:
    return Rule.model_validate(
        {"id": "r1", "send": send or {"email": "t"}, "when": {"expires": "1d"}}
    )


def _candidate(user_id: str, at: datetime, email: str | None = "a@example.com") -> Candidate:
    return Candidate({"id": user_id, "email": email, "traits": {}}, at, None, {}, False)


def test_migrations_create_exactly_the_declared_schema(store: Store) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), metadata)
    assert diff == []


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    migrate(store.engine)
    migrate(store.engine)
    assert store.reads.counts()["users"] == 0


def test_identify_merges_traits_and_keeps_columns(store: Store, now: datetime) -> None:
    store.people.upsert_users(
        [
            UserUpsert(
                "u1", {"plan": "free", "a": 1}, email="a@x.io", persona="analyst", signed_up_at=now
            )
        ],
        now,
    )
    store.people.upsert_users([UserUpsert("u1", {"plan": "team"}, persona="data_engineer")], now)
    (state,) = store.states.user_states()
    assert state.user.traits == {"plan": "team", "a": 1}
    assert state.user.persona == "data_engineer"
    assert state.user.email == "a@x.io"
    assert state.user.signed_up_at == now


def test_same_user_twice_in_one_batch_is_merged_in_order(store: Store, now: datetime) -> None:
    store.people.upsert_users(
        [
            UserUpsert("u1", {"x": 1}, email="old@x.io"),
            UserUpsert("u1", {"y": 2}, email="new@x.io"),
        ],
        now,
    )
    (state,) = store.states.user_states()
    assert state.user.traits == {"x": 1, "y": 2}
    assert state.user.email == "new@x.io"


def test_events_with_a_seen_message_id_are_stored_once(store: Store, now: datetime) -> None:
    event = EventRecord("u1", "login", now, {"n": 1}, "m-1")
    assert store.people.insert_events([event, event], now) == 1
    assert store.people.insert_events([event], now) == 0
    assert store.reads.counts()["events"] == 1


def test_record_is_exactly_once_per_rule_and_user(store: Store, now: datetime) -> None:
    rule = _rule(email="t", guide="g")
    planned = [
        decide(rule, _candidate(u, now), now, guide_ttl=timedelta(days=7), domain="x.io")
        for u in ("u1", "u2")
    ]
    assert len(store.ledger.record(planned, now)) == 2
    # A second writer (a re-run, another replica) loses silently: nothing twice.
    assert store.ledger.record(planned, now + timedelta(minutes=1)) == []
    assert store.reads.counts()["deliveries"] == 2
    flags = store.reads.guide_flags()
    assert sorted(f["user_id"] for f in flags) == ["u1", "u2"]
    assert all(f["expires_at"] == now + timedelta(days=7) for f in flags)


def test_claim_moves_due_rows_to_sending_once(store: Store, now: datetime) -> None:
    rule = _rule(email="t")
    store.ledger.record(
        [decide(rule, _candidate("u1", now), now, guide_ttl=timedelta(days=7), domain="x.io")], now
    )
    store.people.upsert_users([UserUpsert("u1", {}, email="a@example.com")], now)
    assert store.outbox.claim_due(now - timedelta(seconds=1)) == []  # not due yet
    (due,) = store.outbox.claim_due(now)
    assert due.rule_id == "r1"
    assert due.user["email"] == "a@example.com"
    assert due.attempts == 1
    assert store.outbox.claim_due(now) == []  # already claimed
    store.outbox.mark(due.id, Status.SENT, now)
    store.outbox.mark(due.id, Status.FAILED, now)  # only a row still `sending` changes
    (row,) = store.reads.deliveries()
    assert row["status"] == "sent"
    assert row["sent_at"] == now


def test_suppression_by_user_or_email(store: Store, now: datetime) -> None:
    store.people.upsert_users(
        [
            UserUpsert("u1", {}, email="A@Example.com", signed_up_at=now),
            UserUpsert("u2", {}, email="b@example.com", signed_up_at=now),
            UserUpsert("u3", {}, email="c@example.com", signed_up_at=now),
        ],
        now,
    )
    store.people.suppress(now, user_id="u1")
    store.people.suppress(now, email="B@EXAMPLE.COM", reason="bounced")
    store.people.suppress(now, user_id="u1")  # idempotent
    rule = _rule(email="t")
    found = {
        c.user_id: c.suppressed
        for b in store.ledger.candidates(candidates_query(rule, now))
        for c in b
    }
    assert found == {"u1": True, "u2": True, "u3": False}
    states = {s.user.id: s.suppressed for s in store.states.user_states()}
    assert states == found


def test_traits_merge_the_same_within_a_batch_and_across_batches(
    store: Store, now: datetime
) -> None:
    first = UserUpsert("u1", {"company": {"name": "A", "size": 5}, "plan": "free"})
    second = UserUpsert("u1", {"company": {"name": "B"}, "plan": None})
    store.people.upsert_users([first, second], now)
    store.people.upsert_users([UserUpsert("u2", first.traits)], now)
    store.people.upsert_users([UserUpsert("u2", second.traits)], now)
    states = {s.user.id: s.user.traits for s in store.states.user_states()}
    # shallow: a later value replaces the whole trait, null included
    assert states["u1"] == states["u2"] == {"company": {"name": "B"}, "plan": None}


def test_a_failure_after_the_ledger_insert_leaves_no_row_without_its_guide_flag(
    store: Store, now: datetime
) -> None:
    """The ledger rows and their guide flags commit together or not at all. On SQLite the
    ledger INSERT ... SELECT starts with WITH, which pysqlite does not count as a write: it
    ran outside the transaction and committed on its own, so a crash before the flags were
    written left rows whose guide was never shown (seen as a kill -9 test's flake)."""
    store.people.upsert_users([UserUpsert("u1", {}, email="a@x.io", signed_up_at=now)], now)
    rule = _rule(email="t", guide="tour")
    settings = Settings(
        guide_ttl=timedelta(days=7),
        domain="x.io",
        quiet_hours=None,
        daily_cap=None,
        default_timezone="UTC",
    )

    def crash(_written: ColumnElement[bool]) -> Select[Any]:
        raise RuntimeError("the process died between the rows and their flags")

    with pytest.raises(RuntimeError):
        store.ledger.record_decided(ledger_insert(rule, now, settings, ()), crash)
    assert store.reads.counts()["deliveries"] == 0

    decided = store.ledger.record_decided(
        ledger_insert(rule, now, settings, ()), partial(flags_select, rule, now, settings)
    )
    assert decided.statuses == {"pending": 1}
    assert len(store.reads.guide_flags()) == len(store.reads.deliveries()) == 1


@pytest.mark.postgres
def test_postgres_sessions_run_without_jit(pg_database: str) -> None:
    """JIT compiling a rule's statement took 1.4 s of a 1.7 s tick (the trial-account rule at
    100k users); every session the engine opens turns it off, pooled ones too."""
    engine = connect(pg_database)
    try:
        for _ in range(2):
            with engine.connect() as connection:
                assert connection.execute(text("SHOW jit")).scalar() == "off"
    finally:
        engine.dispose()
