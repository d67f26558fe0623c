"""Explain: one query over the rule's compiled conditions says why a rule fires or not, and
agrees with the evaluator and the reference evaluator (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from engine.errors import LifecycleError
from engine.rules import reference
from engine.rules.language import Ops, Rule
from engine.sql.candidates import compile_rule
from engine.sql.explain import explain_query
from engine.store import EventRecord, Store, UserUpsert
from engine.whatif.explain import Explanation, explain, interpret, verdict, wants
from tests.integration.replay_kit import make_runner, write_pack
from tests.integration.test_differential import BASE, _reset, _seed, minutes, populations, rules

RULES = """
rules:
  - id: nudge
    audience:
      persona: data_engineer
      traits: {plan: {in: [free, trial]}}
    when: {after: 24h, expires: 2d, not_done: [connected], done: [verified]}
    send: {email: hello, guide: tour}
    quiet_hours: false
  - id: workflow
    when: {since: started, where: {kind: warehouse}, after: 2h}
    send: {guide: workflow_tour}
  - id: control
    when: {after: 1h}
    send: {email: hello}
    holdout: 100%
"""

NOW = datetime.fromisoformat("2026-03-10T12:00:00+00:00")
DAY = timedelta(days=1)
SIGNUP = NOW - timedelta(hours=30)


def user(
    user_id: str,
    *,
    persona: str = "data_engineer",
    traits: dict[str, object] | None = None,
    signed_up_at: datetime | None = SIGNUP,
) -> UserUpsert:
    return UserUpsert(
        id=user_id,
        traits={"plan": "free"} if traits is None else traits,
        email=f"{user_id}@example.com",
        persona=persona,
        signed_up_at=signed_up_at,
    )


def event(user_id: str, name: str, at: datetime, **properties: object) -> EventRecord:
    return EventRecord(user_id, name, at, dict(properties), f"{user_id}-{name}-{at}")


@pytest.fixture
def scene(tmp_path: Path, store: Store) -> Path:
    write_pack(tmp_path, RULES)
    store.people.upsert_users(
        [
            user("ok"),
            user("ana", persona="analyst"),
            user("tim", traits={"plan": "team"}),
            user("nop", traits={}),
            user("early", signed_up_at=NOW - timedelta(hours=2)),
            user("late", signed_up_at=NOW - 4 * DAY),
            user("conn"),
            user("unver"),
            user("gone"),
            user("nosignup", signed_up_at=None),
            user("crm"),
        ],
        SIGNUP,
    )
    verified = [
        event(u, "verified", SIGNUP + timedelta(hours=1))
        for u in ("ok", "ana", "tim", "nop", "conn", "gone", "crm")
    ]
    store.people.insert_events(
        [
            *verified,
            event("early", "verified", NOW - timedelta(minutes=90)),
            event("late", "verified", NOW - 4 * DAY),
            event("conn", "connected", SIGNUP + timedelta(hours=3)),
            event("crm", "started", SIGNUP + timedelta(hours=4), kind="crm"),
            event("ok", "started", SIGNUP + timedelta(hours=5), kind="warehouse"),
        ],
        SIGNUP,
    )
    store.guides.unsubscribe("gone", SIGNUP)
    return tmp_path


def why(
    directory: Path, store: Store, rule: str, user_id: str
) -> dict[str, tuple[bool | None, str]]:
    found = explain(make_runner(directory, store), rule, user_id, NOW)
    return {c.name: (c.ok, c.detail) for c in (*found.checks, *found.delivery())}


def test_a_firing_user_passes_every_condition(scene: Path, store: Store) -> None:
    found = explain(make_runner(scene, store), "nudge", "ok", NOW)
    assert found.fires
    assert all(c.ok for c in found.checks)
    checks = {c.name: c for c in (*found.checks, *found.delivery())}
    assert list(checks)[:7] == [
        "audience.persona",
        "audience.traits.plan",
        "anchor",
        "after",
        "expires",
        "not_done",
        "done.verified",
    ]
    assert checks["done.verified"].detail == "verified at 2026-03-09T07:00:00Z"
    assert checks["email"].detail == "hello to ok@example.com at 2026-03-10T12:00:00Z"
    assert verdict(found) == (
        "fires at 2026-03-10T12:00:00Z: email hello at 2026-03-10T12:00:00Z, guide tour"
    )


@pytest.mark.parametrize(
    ("user_id", "condition", "detail"),
    [
        ("ana", "audience.persona", "persona is 'analyst'; wants 'data_engineer'"),
        ("tim", "audience.traits.plan", "trait plan is 'team'; wants in ['free', 'trial']"),
        ("nop", "audience.traits.plan", "trait plan is absent; wants in ['free', 'trial']"),
        ("early", "after", "too early: fires at 2026-03-11T10:00:00Z"),
        ("late", "expires", "expired since 2026-03-09T12:00:00Z (fire time + 2d)"),
        ("conn", "not_done", "connected at 2026-03-09T09:00:00Z"),
        ("unver", "done.verified", "no verified between the anchor and 2026-03-10T12:00:00Z"),
        ("nosignup", "anchor", "no signup time"),
    ],
)
def test_the_failing_condition_is_named_with_the_facts(
    scene: Path, store: Store, user_id: str, condition: str, detail: str
) -> None:
    checks = why(scene, store, "nudge", user_id)
    assert checks[condition] == (False, detail)
    failing = [name for name, (ok, _) in checks.items() if ok is False]
    assert failing == [condition]


def test_without_an_anchor_the_timing_is_not_evaluated(scene: Path, store: Store) -> None:
    checks = why(scene, store, "nudge", "nosignup")
    assert checks["after"] == (None, "not evaluated: no anchor")
    assert checks["done.verified"][0] is None
    workflow = why(scene, store, "workflow", "crm")
    assert workflow["anchor"] == (
        False,
        "no started event with kind 'warehouse' (1 started event(s), none matching)",
    )
    found = why(scene, store, "workflow", "ok")
    assert found["anchor"] == (True, "first started with kind 'warehouse' at 2026-03-09T11:00:00Z")


def test_delivery_outcomes_and_the_ledger(scene: Path, store: Store) -> None:
    runner = make_runner(scene, store)
    assert why(scene, store, "nudge", "gone")["email"] == (False, "skipped: unsubscribed")
    held = explain(runner, "control", "early", NOW)
    assert held.fires
    assert [(c.name, c.ok) for c in held.delivery()] == [("holdout", False)]
    assert verdict(held) == "fires at 2026-03-10T12:00:00Z, held out: recorded, nothing sent"
    runner.tick(NOW - timedelta(hours=1))
    checks = why(scene, store, "control", "early")
    assert checks["not_delivered"] == (
        False,
        "already delivered at 2026-03-10T11:00:00Z (status held_out)",
    )


def test_unknown_rule_or_user_is_an_error(scene: Path, store: Store) -> None:
    runner = make_runner(scene, store)
    with pytest.raises(LifecycleError, match=r"unknown rule 'nope' \(known: control, nudge"):
        explain(runner, "nope", "ok", NOW)
    with pytest.raises(LifecycleError, match="unknown user 'nobody'"):
        explain(runner, "nudge", "nobody", NOW)


def test_explanations_agree_with_the_tick(scene: Path, store: Store) -> None:
    """Every (rule, user): explain says it fires exactly when the runner plans a row."""
    runner = make_runner(scene, store)
    for rule in runner.rules.rules:
        planned = {p.user_id for batch in runner.plan(NOW, rule_ids=[rule.id]) for p in batch}
        for state in store.states.user_states():
            found: Explanation = explain(runner, rule.id, state.user.id, NOW)
            assert found.fires == (state.user.id in planned), (rule.id, state.user.id)
            assert (found.planned is not None) == found.fires


def test_wants_reads_like_the_rule() -> None:
    assert wants(Ops.model_validate({"eq": "x"})) == "'x'"
    assert wants(Ops.model_validate({"gte": 3, "lt": 50})) == "gte 3, lt 50"
    assert wants(Ops.model_validate({"not_in": ["a"]})) == "not_in ['a']"


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rule=rules(), population=populations(), offset=minutes)
def test_explain_agrees_with_the_reference_evaluator(
    store: Store,
    rule: Rule,
    population: tuple[list[UserUpsert], list[EventRecord], set[str]],
    offset: int,
) -> None:
    users, events, delivered = population
    _reset(store)
    _seed(store, users, events, delivered, set())
    now = BASE + timedelta(minutes=offset)
    compiled = compile_rule(rule, now)
    for state in store.states.user_states():
        row = store.reads.first_row(explain_query(rule, state.user.id, now))
        assert row is not None
        matches = all(c.ok for c in interpret(rule, compiled, row, now))
        expected = reference.evaluate(rule, state, now) is not None
        assert matches == expected, f"{rule.model_dump(exclude_defaults=True)} {state} {now}"
