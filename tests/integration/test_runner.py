"""The runner over a real database: failures stay with the delivery they belong to, and
concurrent ticks never trigger a rule twice for a user."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import ClauseElement

from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.rules.language import RuleSet, load_rules
from engine.runner import Runner
from engine.store import Store, UserUpsert, connect
from engine.store.testing import intercept

RULES = """
rules:
  - id: welcome
    send: {email: hello, guide: tour}
  - id: plan-note
    send: {email: plan}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "pack.yaml").write_text(RULES)
    for name, subject in (
        ("hello", "Hi {{ user.first_name or 'there' }}"),
        ("plan", "Your {{ user.traits.plan.upper() }} plan"),
    ):
        directory = tmp_path / "templates" / name
        directory.mkdir(parents=True)
        (directory / "subject.txt").write_text(subject)
        (directory / "body.txt").write_text("Hello {{ user.email }}")
        (directory / "body.html").write_text("<p>Hello {{ user.email }}</p>")
    return tmp_path


def make_runner(project: Path, store: Store, transport: RecordingTransport) -> Runner:
    config = Config.model_validate(
        {
            "base_dir": project,
            "mail": {"from": "Team <team@example.com>"},
        }
    )
    renderer = Renderer(project / "templates")
    rules = load_rules(
        project / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    return Runner(store=store, rules=rules, renderer=renderer, transport=transport, config=config)


def seed(store: Store, now: datetime) -> None:
    store.people.upsert_users(
        [
            UserUpsert(
                "u1",
                {"plan": "team", "first_name": "Ana"},
                email="u1@example.com",
                signed_up_at=now - timedelta(minutes=5),
            ),
            UserUpsert("u2", {}, email="u2@example.com", signed_up_at=now - timedelta(minutes=5)),
            UserUpsert("u3", {"plan": "free"}, signed_up_at=now - timedelta(minutes=5)),
        ],
        now,
    )


def test_a_render_error_fails_only_that_delivery(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now)
    transport = RecordingTransport()
    report = make_runner(project, store, transport).tick(now)
    rows = {(d["rule_id"], d["user_id"]): d for d in store.reads.deliveries()}
    assert rows[("plan-note", "u2")]["status"] == "failed"
    assert "plan-note" not in str(rows[("plan-note", "u1")]["reason"])
    assert "plan/subject.txt:1: UndefinedError" in rows[("plan-note", "u2")]["reason"]
    assert rows[("plan-note", "u1")]["status"] == "sent"
    assert rows[("welcome", "u3")]["status"] == "skipped"
    assert rows[("welcome", "u3")]["reason"] == "no_email"
    assert report.dispatched == {"sent": 3, "failed": 1}
    subjects = sorted(str(m["Subject"]) for m in transport.messages)
    assert subjects == ["Hi Ana", "Hi there", "Your TEAM plan"]
    # the guide applies even when the email cannot go out
    assert {f["user_id"] for f in store.reads.guide_flags()} == {"u1", "u2", "u3"}


def test_a_transport_error_is_recorded_not_raised(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now)
    transport = RecordingTransport()
    transport.fail_with = ConnectionRefusedError("smtp down")
    make_runner(project, store, transport).tick(now)
    retrying = [d for d in store.reads.deliveries() if d["status"] == "retrying"]
    assert len(retrying) == 3
    assert all(
        d["reason"] == "temporary failure: ConnectionRefusedError: smtp down" for d in retrying
    )
    assert all(d["send_at"] > now for d in retrying)


def failing_for(rule_id: str, dialect: Dialect) -> Callable[..., Any]:
    """Around a ledger method: the statement of one rule fails, the others run for real."""

    def around(real: Callable[..., Any], statement: ClauseElement, *args: Any) -> Any:
        if rule_id in statement.compile(dialect=dialect).params.values():
            raise RuntimeError("database said no")
        return real(statement, *args)

    return around


def test_one_failing_rule_does_not_stop_the_others(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now)
    broken_ledger = intercept(
        store.ledger,
        candidates=failing_for("welcome", store.engine.dialect),
        record_decided=failing_for("welcome", store.engine.dialect),
    )
    broken = store.replacing(ledger=broken_ledger)
    report = make_runner(project, broken, RecordingTransport()).tick(now)
    assert report.written["welcome/error"] == 1
    assert {d["rule_id"] for d in store.reads.deliveries()} == {"plan-note"}


def test_concurrent_ticks_trigger_each_rule_once_per_user(
    project: Path, store: Store, now: datetime
) -> None:
    users = [
        UserUpsert(
            f"u{i}",
            {"plan": "team"},
            email=f"u{i}@example.com",
            signed_up_at=now - timedelta(minutes=i % 50),
        )
        for i in range(300)
    ]
    store.people.upsert_users(users, now)
    url = store.engine.url.render_as_string(hide_password=False)
    engines = [connect(url) for _ in range(3)]
    runners = [make_runner(project, Store(e), RecordingTransport()) for e in engines]
    barrier = threading.Barrier(len(runners))
    errors: list[BaseException] = []

    def tick(runner: Runner) -> None:
        try:
            barrier.wait(timeout=30)
            runner.tick(now, dispatch=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for engine in engines:
        engine.dispose()
    assert errors == []
    rows = store.reads.deliveries()
    assert len(rows) == 600
    assert len({(d["rule_id"], d["user_id"]) for d in rows}) == 600
    assert len(store.reads.guide_flags()) == 300


def test_rule_set_from_a_store_with_rules_removed_fails_visibly(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now)
    runner = make_runner(project, store, RecordingTransport())
    runner.tick(now, dispatch=False)
    runner.rules = RuleSet(tuple(r for r in runner.rules.rules if r.id != "plan-note"))
    outcome = runner.dispatch(now)
    assert outcome["failed"] == 2  # plan-note rows for u1, u2: the rule no longer exists
    reasons = {d["reason"] for d in store.reads.deliveries() if d["status"] == "failed"}
    assert reasons == {"rule 'plan-note' is no longer defined"}
