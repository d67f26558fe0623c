"""Explain for rule language v2, on SQLite and PostgreSQL: one line per new condition with
the account's facts (recency windows, counts, the account's events and traits), the anchor
and occurrence it explains, the ledger per occurrence, per account and per repeat, and the
member a `once_per: account` rule picks; and, on random data, explain fires exactly where
the reference evaluator does."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.rules import reference
from engine.rules.language import Rule
from engine.sql.candidates import compile_rule
from engine.sql.explain import explain_query
from engine.store import AccountUpsert, EventRecord, Store, UserUpsert
from engine.whatif.explain import explain, interpret, verdict
from tests.integration.replay_kit import make_runner, write_pack
from tests.integration.test_differential_v2 import BASE, Population, _reset, _seed
from tests.integration.test_differential_v2 import populations as v2_populations
from tests.integration.test_differential_v2 import rules as v2_rules

DAY = timedelta(days=1)
NOW = BASE + 40 * DAY
SIGNUP = NOW - 60 * DAY

RULES = """
rules:
  - id: win-back
    when:
      since: {event: run, occurrence: last}
      after: 14d
      expires: 7d
      done: [{event: run, within: 60d, count: {gte: 3}}]
      not_done: [{event: login, within: 7d}]
    repeat_after: 30d
    send: {email: hello}
    quiet_hours: false
  - id: trial-nudge
    audience: {account: {plan: {in: [trial]}}}
    when:
      since: account_created
      after: 3d
      expires: 90d
      account_not_done: [run]
      account_done: [{event: invite, within: 60d}]
    once_per: account
    send: {email: hello}
    quiet_hours: false
  - id: each-workflow
    when: {since: {event: started, key: workflow_id}, after: 1h, expires: 90d}
    once_per: occurrence
    send: {guide: tour}
"""


def user(user_id: str, account: str | None, signed_up_days_ago: int = 60) -> UserUpsert:
    return UserUpsert(
        id=user_id,
        traits={},
        email=f"{user_id}@example.com",
        signed_up_at=NOW - signed_up_days_ago * DAY,
        account_id=account,
    )


def event(user_id: str, name: str, days_ago: float, **properties: object) -> EventRecord:
    at = NOW - timedelta(days=days_ago)
    return EventRecord(user_id, name, at, dict(properties), f"{user_id}-{name}-{days_ago}")


@pytest.fixture
def scene(tmp_path: Path, store: Store) -> Path:
    write_pack(tmp_path, RULES)
    store.people.upsert_users(
        [
            user("lapsed", None),
            user("light", None),
            user("first", "acme", 50),
            user("second", "acme", 40),
            user("builder", "globex", 30),
            user("maker", None),
        ],
        SIGNUP,
    )
    store.people.upsert_accounts(
        [AccountUpsert("acme", {"plan": "trial"}), AccountUpsert("globex", {"plan": "team"})],
        SIGNUP,
    )
    store.people.insert_events(
        [
            *(event("lapsed", "run", days) for days in (30, 25, 20)),
            event("light", "run", 20),
            event("light", "login", 2),
            event("second", "invite", 10),
            event("maker", "started", 5, workflow_id="w1"),
            event("maker", "started", 4, workflow_id="w1"),
            event("maker", "started", 3, workflow_id="w2"),
        ],
        SIGNUP,
    )
    return tmp_path


def why(
    directory: Path, store: Store, rule: str, user_id: str
) -> dict[str, tuple[bool | None, str]]:
    found = explain(make_runner(directory, store), rule, user_id, NOW)
    return {c.name: (c.ok, c.detail) for c in found.checks}


def test_win_back_explains_the_last_anchor_the_count_and_the_recency_window(
    scene: Path, store: Store
) -> None:
    checks = why(scene, store, "win-back", "lapsed")
    assert checks["anchor"] == (True, "last run at 2026-03-30T12:00:00Z")
    assert checks["done[0]"] == (
        True,
        "3 run in the last 60d (since 2026-02-18T12:00:00Z); wants gte 3",
    )
    assert checks["not_done[0]"] == (True, "no login in the last 7d (since 2026-04-12T12:00:00Z)")
    assert checks["not_delivered"] == (True, "not delivered yet")
    light = why(scene, store, "win-back", "light")
    assert light["done[0]"][0] is False
    assert light["done[0]"][1].startswith("1 run in the last 60d")
    assert light["not_done[0]"] == (
        False,
        "login at 2026-04-17T12:00:00Z (1 in the last 7d (since 2026-04-12T12:00:00Z))",
    )


def test_a_repeating_rule_explains_its_last_firing_and_the_next(scene: Path, store: Store) -> None:
    runner = make_runner(scene, store)
    runner.tick(NOW - 5 * DAY, dispatch=False)
    checks = why(scene, store, "win-back", "lapsed")
    assert checks["not_delivered"] == (
        False,
        "already delivered at 2026-04-14T12:00:00Z (status pending); "
        "may repeat from 2026-05-14T12:00:00Z",
    )
    later = explain(runner, "win-back", "lapsed", NOW + 26 * DAY)
    delivered = next(c for c in later.checks if c.name == "not_delivered")
    assert delivered.ok is True
    assert delivered.detail == (
        "last delivered at 2026-04-14T12:00:00Z, over 30d ago: this is firing #2"
    )


def test_account_conditions_name_the_account_and_its_members(scene: Path, store: Store) -> None:
    first = why(scene, store, "trial-nudge", "first")
    assert first["audience.account.plan"] == (
        True,
        "account acme's trait plan is 'trial'; wants in ['trial']",
    )
    assert first["anchor"] == (
        True,
        "account acme's first member signed up at 2026-02-28T12:00:00Z",
    )
    assert first["account_not_done[0]"] == (
        True,
        "no run by members of account acme between the anchor and 2026-04-19T12:00:00Z",
    )
    assert first["account_done[0]"] == (
        True,
        "invite at 2026-04-09T12:00:00Z by second (1 in the last 60d (since 2026-02-18T12:00:00Z))",
    )
    assert first["account_member"] == (
        True,
        "the earliest-signed-up matching member of account acme",
    )
    second = why(scene, store, "trial-nudge", "second")
    assert second["account_member"] == (
        False,
        "account acme fires for first, its earliest-signed-up matching member",
    )
    builder = why(scene, store, "trial-nudge", "builder")
    assert builder["audience.account.plan"] == (
        False,
        "account globex's trait plan is 'team'; wants in ['trial']",
    )
    assert builder["account_member"] == (None, "not evaluated: a condition fails")
    alone = why(scene, store, "trial-nudge", "lapsed")
    assert alone["audience.account.plan"] == (
        False,
        "the user's own account has no traits; wants in ['trial']",
    )
    assert alone["account_not_done[0]"][1].startswith("run at 2026-03-20T12:00:00Z by lapsed")


def test_once_per_account_explains_the_ledger_of_the_account(scene: Path, store: Store) -> None:
    runner = make_runner(scene, store)
    runner.tick(NOW, dispatch=False)
    second = why(scene, store, "trial-nudge", "second")
    assert second["not_delivered"] == (
        False,
        "already delivered to account acme at 2026-04-19T12:00:00Z, to first (status pending)",
    )


def test_each_occurrence_is_explained_and_the_ledger_is_per_occurrence(
    scene: Path, store: Store
) -> None:
    runner = make_runner(scene, store)
    found = explain(runner, "each-workflow", "maker", NOW)
    checks = {c.name: (c.ok, c.detail) for c in found.checks}
    assert checks["anchor"][0] is True
    assert found.fires
    assert found.planned is not None
    occurrence = found.planned.occurrence
    assert occurrence in ("key:w1", "key:w2")
    runner.tick(NOW, dispatch=False)
    again = why(scene, store, "each-workflow", "maker")
    assert again["not_delivered"][0] is False
    assert again["not_delivered"][1].startswith("already delivered for occurrence key:w")
    assert verdict(explain(runner, "each-workflow", "maker", NOW)).startswith("does not fire")


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rule=v2_rules(), population=v2_populations(), offset=st.integers(-2, 12))
def test_explain_fires_where_the_reference_evaluator_does(
    store: Store, rule: Rule, population: Population, offset: int
) -> None:
    _reset(store)
    _seed(store, population, rule)
    now = BASE + timedelta(minutes=30 * offset)
    fired = reference.firings(rule, store.states.world(), now)
    compiled = compile_rule(rule, now)
    for upsert in population.users:
        row = store.reads.first_row(explain_query(rule, upsert.id, now))
        assert row is not None
        checks = interpret(rule, compiled, row, now)
        mine = {(f.subject, f.occurrence) for f in fired if f.user_id == upsert.id}
        assert all(c.ok for c in checks) == bool(mine), (rule, upsert.id, checks)
        if mine:
            assert (row["subject"], row["occurrence"]) in mine
