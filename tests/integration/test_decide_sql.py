"""A tick writes in SQL what SQL can decide (engine/sql/ledger.py): on random users, rules,
ledgers, caps and quiet hours, it must write exactly the rows decide() and the cap write,
and that the dry run plans, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.rules.language import Rule, RuleSet
from engine.runner import Runner
from engine.sql.schema import deliveries, guide_flags, metadata
from engine.store import EventRecord, Store, UserUpsert

BASE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ZONES = (None, "", "UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Nope/Zone")
EMAILS = ("{}@example.com", None, "")
hours = st.integers(min_value=-30, max_value=30).map(lambda h: timedelta(hours=h))


@st.composite
def rules(draw: st.DrawFn) -> list[Rule]:
    out = []
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        send = draw(
            st.sampled_from(
                [
                    {"email": "t"},
                    {"guide": "g", "guide_params": {"step": 1}},
                    {"email": "t", "guide": "g"},
                    {"email": {"variants": {"a": "t", "b": "t2"}, "split": {"a": 30, "b": 70}}},
                    {
                        "email": {"variants": {"a": "t", "b": "t2", "c": "t3"}},
                        "guide": {"variants": {"a": "g", "b": "g2", "c": "g3"}},
                    },
                    {"guide": {"variants": {"x": "g", "y": "g2"}, "split": {"x": 0, "y": 100}}},
                ]
            )
        )
        out.append(
            Rule.model_validate(
                {
                    "id": f"r{index}",
                    "priority": draw(st.integers(0, 2)),
                    "when": {
                        "since": draw(st.sampled_from(["signed_up", "a"])),
                        "after": draw(st.sampled_from(["0", "30m", "1d"])),
                        "expires": "2d",
                    },
                    "send": send,
                    "holdout": draw(st.sampled_from(["0%", "30%", "50%", "100%"])),
                    "frequency_cap": draw(st.booleans()),
                    "quiet_hours": draw(st.sampled_from([None, False])),
                }
            )
        )
    return out


@st.composite
def populations(
    draw: st.DrawFn,
) -> tuple[list[UserUpsert], list[EventRecord], list[dict[str, Any]]]:
    users, events, ledger = [], [], []
    for index in range(draw(st.integers(min_value=1, max_value=8))):
        user_id = f"u{index}"
        email = draw(st.sampled_from(EMAILS))
        users.append(
            UserUpsert(
                id=user_id,
                traits={},
                email=email.format(user_id) if email else email,
                timezone=draw(st.sampled_from(ZONES)),
                signed_up_at=BASE - draw(hours).__abs__() + timedelta(microseconds=index),
            )
        )
        for _ in range(draw(st.integers(0, 2))):
            events.append(EventRecord(user_id, "a", BASE - abs(draw(hours)), {}, None))
        for old in range(draw(st.integers(0, 3))):
            ledger.append(_old_email(user_id, f"old{old}", BASE + draw(hours)))
    return users, events, ledger


def _old_email(user_id: str, rule_id: str, send_at: datetime) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "user_id": user_id,
        "status": "pending",
        "email_template": "t",
        "anchor_at": BASE,
        "fire_at": BASE,
        "send_at": send_at,
        "holdout": False,
        "attempts": 0,
        "created_at": BASE,
        "updated_at": BASE,
    }


def _runner(store: Store, rules: list[Rule], cap: int | None, quiet: bool, base: Path) -> Runner:
    mail: dict[str, Any] = {"from": "Team <team@example.com>", "daily_cap": cap}
    if quiet:
        mail["quiet_hours"] = {"start": "21:00", "end": "08:00"}
    config = Config.model_validate({"base_dir": base, "mail": mail})
    return Runner(
        store=store,
        rules=RuleSet(tuple(rules)),
        renderer=Renderer(base),
        transport=RecordingTransport(),
        config=config,
    )


def _reset_ledger(store: Store, ledger: list[dict[str, Any]]) -> None:
    with store.engine.begin() as connection:
        connection.execute(delete(guide_flags))
        connection.execute(delete(deliveries))
        if ledger:
            connection.execute(deliveries.insert(), ledger)


def _written(store: Store) -> list[tuple[Any, ...]]:
    """Ledger rows and their flags, without the ids the two paths number differently."""
    flags = {f["delivery_id"]: f for f in store.reads.guide_flags()}
    rows = []
    for row in store.reads.deliveries():
        flag = flags.get(row["id"])
        flag_fields = (
            None
            if flag is None
            else tuple(sorted((k, v) for k, v in flag.items() if k not in ("id", "delivery_id")))
        )
        rows.append((*sorted((k, v) for k, v in row.items() if k != "id"), flag_fields))
    return sorted(rows, key=repr)


def _reset_all(store: Store) -> None:
    with store.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rule_list=rules(),
    population=populations(),
    cap=st.sampled_from([None, 1, 2]),
    quiet=st.booleans(),
    later=st.sampled_from([timedelta(0), timedelta(hours=9, minutes=30), timedelta(hours=20)]),
    suppressed=st.sets(st.sampled_from(["u0", "u1", "u2"])),
)
def test_the_sql_path_writes_what_decide_writes(
    store: Store,
    tmp_path: Path,
    rule_list: list[Rule],
    population: tuple[list[UserUpsert], list[EventRecord], list[dict[str, Any]]],
    cap: int | None,
    quiet: bool,
    later: timedelta,
    suppressed: set[str],
) -> None:
    users, events, ledger = population
    _reset_all(store)
    store.people.upsert_users(users, BASE)
    store.people.insert_events(events, BASE)
    for user_id in sorted(suppressed & {u.id for u in users}):
        store.people.suppress(BASE, user_id=user_id)
    now = BASE + later
    runner = _runner(store, rule_list, cap, quiet, tmp_path)

    _reset_ledger(store, ledger)
    planned = {
        (p.rule_id, p.user_id, p.status.value, p.reason, p.send_at)
        for batch in runner.plan(now)
        for p in batch
    }
    runner.set_based = False
    runner.tick(now, dispatch=False)
    expected = _written(store)

    _reset_ledger(store, ledger)
    runner.set_based = True
    report = runner.tick(now, dispatch=False)
    assert not [key for key in report.written if key.endswith("/error")]
    assert _written(store) == expected
    written = {
        (d["rule_id"], d["user_id"], d["status"], d["reason"], d["send_at"])
        for d in store.reads.deliveries()
        if not d["rule_id"].startswith("old")
    }
    assert written == planned
