"""Replay and diff with rule language v2, against the real thing (SQLite and PostgreSQL): the
daemon ticking every hour writes exactly the ledger the replay shows, several rows per (rule,
user) and one per account included, and a diff compares firings by their ledger key."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.store import AccountUpsert, EventRecord, Store, UserUpsert
from engine.whatif.replay import Entry, Period, diff, diff_totals, replay
from tests.integration import replay_kit_v2 as kit
from tests.integration.replay_kit import T0, make_runner, run_daemon, write_pack

HOUR = timedelta(hours=1)
STEP = 2 * HOUR  # the daemon's and the replay's; every hour costs twice the time
PERIOD = Period(T0, T0 + timedelta(days=kit.DAYS), STEP)

Key = tuple[str, str, str, str, str, datetime, datetime | None, datetime]


def ledger_keys(store: Store, since: datetime) -> set[Key]:
    """The ledger as written: an email that has gone out since was `pending` when written."""

    def written(row: dict[str, Any]) -> str:
        return "pending" if row["email_template"] else str(row["status"])

    return {
        (
            r["rule_id"],
            r["user_id"],
            r["subject"],
            r["occurrence"],
            written(r),
            r["fire_at"],
            r["send_at"],
            r["created_at"],
        )
        for r in store.reads.deliveries()
        if r["created_at"] >= since
    }


def timeline_keys(entries: tuple[Entry, ...]) -> set[Key]:
    return {
        (e.rule_id, e.user_id, e.subject, e.occurrence, e.status, e.fire_at, e.send_at, e.at)
        for e in entries
    }


@pytest.fixture
def recorded(tmp_path: Path, store: Store) -> Store:
    write_pack(tmp_path, kit.RULES)
    kit.seed(store)
    run_daemon(tmp_path, store, PERIOD, kit.UNSUBSCRIBES)
    return store


def test_a_v2_replay_shows_exactly_what_the_daemon_wrote(tmp_path: Path, recorded: Store) -> None:
    """From an empty ledger, and from the ledger as it was mid-period."""
    before = recorded.reads.dump()
    timeline = replay(make_runner(tmp_path, recorded), PERIOD)
    assert recorded.reads.dump() == before
    assert timeline_keys(timeline.entries) == ledger_keys(recorded, T0)
    assert not timeline.errors
    entries = timeline.entries
    # The population exercises every scope: repeats and occurrences (several rows for one
    # rule and user), one row per account (never two members), users without an account.
    per_user = Counter((e.rule_id, e.user_id) for e in entries)
    for rule in ("lapsed", "each-lapse", "each-flow"):
        assert max(n for (r, _), n in per_user.items() if r == rule) >= 2, rule
    assert any(e.occurrence == "#2" for e in entries if e.rule_id == "lapsed")
    assert any(e.occurrence.startswith("event:") for e in entries if e.rule_id == "each-lapse")
    assert any(e.occurrence.startswith("key:") for e in entries if e.rule_id == "each-flow")
    accounts = [e for e in entries if e.rule_id == "trial-workspace"]
    assert accounts
    assert all(e.subject.startswith("account:W") for e in accounts)
    assert len({e.subject for e in accounts}) == len(accounts)
    pings = [e for e in entries if e.rule_id == "team-ping"]
    assert any(e.subject.startswith("user:") for e in pings)
    assert any(e.occurrence == "#2" for e in pings)
    assert len({e.key for e in entries}) == len(entries)
    assert {e.outcome for e in entries} == {"email", "guide", "held_out", "skipped"}

    # From the ledger as it was mid-period, the repeats carry on where the daemon's did
    # (one recorded history for both: recording it is most of the cost).
    start = T0 + timedelta(days=3, hours=6)
    period = Period(start, PERIOD.end, STEP)
    with_history = replay(make_runner(tmp_path, recorded), period, with_history=True)
    assert timeline_keys(with_history.entries) == ledger_keys(recorded, start)
    assert any(e.occurrence not in ("", "#2") for e in with_history.entries)


# ---- diff by ledger key, on hand-built data ------------------------------------------------

DIFF_RULES = """
rules:
  - id: each-flow
    when: {since: {event: started, key: flow}, after: 2h, expires: 1d}
    once_per: occurrence
    send: {guide: save_tour}
  - id: remind
    when: {after: 1h, not_done: [verified], expires: 10d}
    repeat_after: 2d
    send: {guide: verify}
  - id: workspace
    audience: {persona: sales}
    when: {after: 1h, expires: 10d}
    once_per: account
    send: {email: hello}
"""
PROPOSED = (
    DIFF_RULES.replace("after: 2h, expires: 1d", "after: 3h, expires: 1d")
    .replace("repeat_after: 2d", "repeat_after: 1d")
    .replace("persona: sales", "persona: [sales, data_engineer]")
)


def diff_population(store: Store) -> None:
    """u1 (sales) and u2 (a data engineer who signed up first) share workspace A; u1 starts
    workflows f1 and f2."""
    people = [("u1", "sales", T0 + HOUR), ("u2", "data_engineer", T0)]
    store.people.upsert_accounts([AccountUpsert("A", {})], T0)
    store.people.upsert_users(
        [
            UserUpsert(
                uid, {}, email=f"{uid}@x.io", persona=persona, account_id="A", signed_up_at=at
            )
            for uid, persona, at in people
        ],
        T0,
    )
    store.people.insert_events(
        [
            EventRecord("u1", "started", T0 + 2 * HOUR, {"flow": "f1"}, "s1"),
            EventRecord("u1", "started", T0 + 10 * HOUR, {"flow": "f2"}, "s2"),
        ],
        T0,
    )


def test_diff_compares_each_occurrence_repeat_and_account_firing(
    tmp_path: Path, store: Store
) -> None:
    write_pack(tmp_path, DIFF_RULES)
    diff_population(store)
    period = Period(T0, T0 + timedelta(days=3), HOUR)
    baseline = replay(make_runner(tmp_path, store), period).entries
    proposed = write_pack(tmp_path / "proposed", PROPOSED)
    after = replay(make_runner(tmp_path, store, proposed), period).entries
    changes = {change.key: change for change in diff(baseline, after)}
    kinds = {key: change.kind for key, change in changes.items()}
    assert kinds == {
        # Both workflows fire an hour later: two moved firings of one (rule, user).
        ("each-flow", "u1", "key:f1"): "moved",
        ("each-flow", "u1", "key:f2"): "moved",
        # Repeats every day instead of every other day until 72h, for both users: u1 at
        # 2h, 26h, 50h instead of 2h, 50h; u2 at 1h, 25h, 49h instead of 1h, 49h.
        ("remind", "u1", "#2"): "moved",
        ("remind", "u1", "#3"): "gained",
        ("remind", "u2", "#2"): "moved",
        ("remind", "u2", "#3"): "gained",
        # The workspace's email goes to its earliest matching member: u2, no longer u1.
        ("workspace", "account:A", ""): "changed",
    }
    assert changes[("remind", "u1", "#2")].before.at == T0 + 50 * HOUR  # type: ignore[union-attr]
    assert changes[("remind", "u1", "#2")].after.at == T0 + 26 * HOUR  # type: ignore[union-attr]
    workspace = changes[("workspace", "account:A", "")]
    assert (workspace.before and workspace.before.user_id) == "u1"
    assert (workspace.after and workspace.after.user_id) == "u2"
    totals = diff_totals(list(changes.values()))
    assert totals["remind"] == Counter(moved=2, gained=2)
    assert totals["*"] == Counter(moved=4, gained=2, changed=1, lost=0)
    assert diff(after, after) == []
