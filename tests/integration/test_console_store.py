"""The console's store reads and its one write (lifting a suppression, with its audit row),
on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert

from engine.sql.schema import deliveries, guide_flags
from engine.store import EventRecord, Store, UserUpsert
from engine.store.audit import Actor

MARIA = Actor("maria", "operator")


def _row(id_: int, rule: str, user: str, status: str, at: datetime) -> dict[str, object]:
    return {
        "id": id_,
        "rule_id": rule,
        "user_id": user,
        "subject": user,
        "occurrence": "",
        "status": status,
        "anchor_at": at,
        "fire_at": at,
        "holdout": False,
        "attempts": 0,
        "created_at": at,
        "updated_at": at,
    }


def _seed(store: Store, now: datetime) -> None:
    store.people.upsert_users(
        [
            UserUpsert("u1", {"plan": "free"}, email="Ann@Example.com", signed_up_at=now),
            UserUpsert("u2", {}, email="bob@example.com", signed_up_at=now),
        ],
        now,
    )
    store.people.insert_events(
        [EventRecord("u1", "login", now - timedelta(hours=h), {}, None) for h in (1, 3)], now
    )
    rows = [
        _row(1, "welcome", "u1", "sent", now - timedelta(hours=2)),
        _row(2, "welcome", "u2", "failed", now - timedelta(days=2)),
        _row(3, "nudge", "u1", "unknown", now - timedelta(days=10)),
        _row(4, "nudge", "u2", "sent", now - timedelta(hours=5)),
        _row(5, "welcome", "u1", "retrying", now - timedelta(minutes=30)),
    ]
    rows[4]["subject"], rows[4]["occurrence"] = "u1", "#2"
    with store.engine.begin() as connection:
        connection.execute(insert(deliveries), rows)
        connection.execute(
            insert(guide_flags),
            [
                {
                    "delivery_id": 1,
                    "user_id": "u1",
                    "guide_id": "tour",
                    "rule_id": "welcome",
                    "status": "active",
                    "set_at": now - timedelta(hours=2),
                    "updated_at": now,
                }
            ],
        )


def test_rule_counts_by_status_over_a_day_a_week_and_ever(store: Store, now: datetime) -> None:
    _seed(store, now)
    assert store.console.rule_counts(now) == {
        "welcome": {"sent": (1, 1, 1), "failed": (0, 1, 1), "retrying": (1, 1, 1)},
        "nudge": {"unknown": (0, 0, 1), "sent": (1, 1, 1)},
    }


def test_deliveries_page_attention_first_then_newest(store: Store, now: datetime) -> None:
    _seed(store, now)
    page = store.console.deliveries_page
    assert [r["id"] for r in page(limit=10, offset=0)] == [5, 3, 2, 4, 1]
    assert [r["id"] for r in page(limit=2, offset=3)] == [4, 1]
    assert [r["id"] for r in page(limit=10, offset=0, rule_id="nudge")] == [3, 4]
    assert [r["id"] for r in page(limit=10, offset=0, status="sent")] == [4, 1]
    since, until = now - timedelta(days=3), now - timedelta(hours=3)
    assert [r["id"] for r in page(limit=10, offset=0, since=since, until=until)] == [2, 4]


def test_users_are_found_by_id_or_email(store: Store, now: datetime) -> None:
    _seed(store, now)
    assert [u["id"] for u in store.console.find_users("u2", limit=5)] == ["u2"]
    assert [u["id"] for u in store.console.find_users("bob@example.com", limit=5)] == ["u2"]
    assert [u["id"] for u in store.console.find_users("Ann@Example.com", limit=5)] == ["u1"]
    assert store.console.find_users("nobody", limit=5) == []
    user = store.console.user("u1")
    assert user is not None
    assert user["traits"] == {"plan": "free"}
    assert user["account"] is None
    assert store.console.user("nobody") is None


def test_a_timeline_puts_events_ledger_rows_and_guides_on_one_axis(
    store: Store, now: datetime
) -> None:
    _seed(store, now)
    items = store.console.timeline("u1", limit=10, offset=0)
    assert [(i["kind"], i.get("name") or i.get("rule_id")) for i in items] == [
        ("delivery", "welcome"),  # 30 minutes ago (the repeat)
        ("event", "login"),  # 1 hour ago
        ("delivery", "welcome"),  # 2 hours ago, the same moment as its guide flag
        ("guide", "welcome"),
        ("event", "login"),  # 3 hours ago
        ("delivery", "nudge"),  # 10 days ago
    ]
    assert [i["kind"] for i in store.console.timeline("u1", limit=2, offset=2)] == [
        "delivery",
        "guide",
    ]
    assert store.console.timeline("nobody", limit=10, offset=0) == []


def test_lifting_a_suppression_writes_its_audit_row(store: Store, now: datetime) -> None:
    _seed(store, now)
    store.people.suppress(now, user_id="u1", reason="unsubscribed")
    store.people.suppress(now, email="bob@example.com", reason="bounced")
    [mine] = store.console.suppressions("u1", "Ann@Example.com")
    [bobs] = store.console.suppressions("u2", "bob@example.com")
    assert store.audit.lift_suppression(MARIA, bobs["id"], "u1", now) is None  # not u1's
    assert store.audit.lift_suppression(MARIA, mine["id"], "u1", now) is not None
    assert store.audit.lift_suppression(MARIA, bobs["id"], "u2", now) is not None
    assert store.console.suppressions("u1", "Ann@Example.com") == []
    assert store.console.suppressions("u2", "bob@example.com") == []
    rows = store.audit.page(limit=10, offset=0)
    assert [(r["actor"], r["action"], r["target"]) for r in rows] == [
        ("maria", "lift_suppression", "user:u2"),
        ("maria", "lift_suppression", "user:u1"),
    ]
    assert rows[0]["at"] == now
    assert store.audit.count() == 2
    assert store.audit.lift_suppression(MARIA, mine["id"], "u1", now) is None  # gone
    assert store.audit.count() == 2
