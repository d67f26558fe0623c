"""The set-based tick (engine/sql/ledger.py) assigns each subject the variant decide() does,
on SQLite and PostgreSQL: over enough users that every boundary of a three-way split is
crossed, and with a holdout beside it (held-out rows get none)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

from engine.decide.keys import in_holdout
from engine.decide.variants import variant_of
from engine.rules.language import Rule
from engine.store import Store, UserUpsert
from tests.integration.test_decide_sql import BASE, _reset_all, _runner

USERS = 400


def test_the_sql_path_assigns_the_variants_decide_assigns(store: Store, tmp_path: Path) -> None:
    rule = Rule.model_validate(
        {
            "id": "welcome",
            "when": {"expires": "2d"},
            "send": {
                "email": {
                    "variants": {"a": "t_a", "b": "t_b", "c": "t_c"},
                    "split": {"a": 20, "b": 30, "c": 50},
                },
                "guide": {
                    "variants": {"a": "g_a", "b": "g_b", "c": "g_c"},
                    "split": {"a": 20, "b": 30, "c": 50},
                },
            },
            "holdout": "10%",
        }
    )
    _reset_all(store)
    users = [
        UserUpsert(
            id=f"u{i}",
            traits={},
            email=f"u{i}@example.com",
            timezone="UTC",
            signed_up_at=BASE - timedelta(minutes=5),
        )
        for i in range(USERS)
    ]
    store.people.upsert_users(users, BASE)
    runner = _runner(store, [rule], None, False, tmp_path)
    runner.set_based = True
    runner.tick(BASE, dispatch=False)
    rows = store.reads.deliveries()
    assert len(rows) == USERS
    for row in rows:
        if in_holdout(rule, row["subject"]):
            assert (row["variant"], row["email_template"], row["guide_id"]) == (None, None, None)
            continue
        variant = variant_of(rule, row["subject"])
        assert row["variant"] == variant
        assert row["email_template"] == f"t_{variant}"
        assert row["guide_id"] == f"g_{variant}"
    assert set(Counter(row["variant"] for row in rows)) == {None, "a", "b", "c"}
    flags = {f["delivery_id"]: f["guide_id"] for f in store.reads.guide_flags()}
    assert all(flags[row["id"]] == row["guide_id"] for row in rows if row["guide_id"])
