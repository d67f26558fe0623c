"""The simulated history: a planted effect of messages on their goal is what a holdout
comparison of the ledger and the events measures; the history is deterministic per seed."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.rules.language import Goal, Rule
from engine.sql.schema import deliveries, events
from engine.store import Store, connect, migrate
from engine.whatif import population as demo
from engine.whatif.replay import Period, replay
from engine.whatif.simulate import Response, satisfying, simulate, treated
from tests.integration.replay_kit import make_runner, write_pack

END = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
WITHIN = timedelta(days=2)
RULES = """
rules:
  - id: activate
    when: {expires: 1d}
    send: {email: hello}
    goal: {event: activated, within: 2d}
    holdout: 50%
    quiet_hours: false
    frequency_cap: false
"""


def run(directory: Path, store: Store, *, users: int, days: int, seed: int) -> None:
    write_pack(directory, RULES)
    population = demo.generate(users, seed=seed, now=END, days=days)
    period = Period(END - timedelta(days=days), END, timedelta(hours=1))
    simulate(make_runner(directory, store), population, period, Response(0.2, 0.3, seed))


def conversions(store: Store) -> dict[bool, list[bool]]:
    """Per group (held out or not), whether each user met the goal within the window, for
    rows whose window closed inside the period."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            select(deliveries.c.user_id, deliveries.c.status, deliveries.c.created_at).where(
                deliveries.c.rule_id == "activate"
            )
        ).all()
        goal_times: dict[str, list[datetime]] = {}
        for user_id, at in connection.execute(
            select(events.c.user_id, events.c.occurred_at).where(events.c.name == "activated")
        ):
            goal_times.setdefault(user_id, []).append(at)
    groups: dict[bool, list[bool]] = {True: [], False: []}
    for user_id, status, created in rows:
        if created + WITHIN <= END:
            met = any(created <= t <= created + WITHIN for t in goal_times.get(user_id, []))
            groups[status == "held_out"].append(met)
    return groups


def test_the_planted_effect_is_inside_the_measured_confidence_interval(
    tmp_path: Path, store: Store
) -> None:
    run(tmp_path, store, users=1200, days=4, seed=11)
    groups = conversions(store)
    treated_rate, held_rate = (sum(g) / len(g) for g in (groups[False], groups[True]))
    assert min(len(groups[False]), len(groups[True])) > 250
    effect = treated_rate - held_rate
    error = math.sqrt(
        treated_rate * (1 - treated_rate) / len(groups[False])
        + held_rate * (1 - held_rate) / len(groups[True])
    )
    low, high = effect - 1.96 * error, effect + 1.96 * error
    assert low <= 0.3 <= high, (treated_rate, held_rate, low, high)
    assert low > 0  # and the effect is detected at all


def test_the_history_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    histories = []
    for name in ("a", "b"):
        engine = connect(f"sqlite:///{tmp_path / name}.db")
        migrate(engine)
        store = Store(engine)
        run(tmp_path / name, store, users=150, days=2, seed=5)
        histories.append(_history(store))
        engine.dispose()
    assert histories[0] == histories[1]
    assert histories[0][1]  # some goal events were performed


def _history(store: Store) -> tuple[list[Any], list[Any]]:
    ledger = sorted(
        (d["rule_id"], d["user_id"], d["status"], d["created_at"], d["sent_at"])
        for d in store.reads.deliveries()
    )
    goals = sorted(
        (e.user_id, e.occurred_at)
        for state in store.states.user_states()
        for e in state.events
        if e.name == "activated"
    )
    return ledger, goals


def _row(
    status: str, guide: str | None = None, *, subject: str = "u1", occurrence: str = ""
) -> dict[str, Any]:
    return {
        "user_id": "u1",
        "subject": subject,
        "occurrence": occurrence,
        "status": status,
        "guide_id": guide,
        "created_at": END,
    }


@pytest.mark.parametrize(
    ("status", "guide", "expected"),
    [
        ("pending", None, True),
        ("sent", None, True),
        ("held_out", None, False),
        ("skipped", None, False),
        ("skipped", "tour", True),  # the email was skipped, the guide was shown
    ],
)
def test_treated_means_something_reached_the_user(
    status: str, guide: str | None, expected: bool
) -> None:
    assert treated(_row(status, guide)) is expected


def test_goal_events_are_drawn_per_rule_and_user_within_the_window() -> None:
    rule = Rule.model_validate(
        {"id": "r", "send": {"email": "t"}, "goal": {"event": "done", "within": "1d"}}
    )
    always = Response(baseline=1.0, effect=0.0, seed=1)
    first = always.goal_event(rule, _row("held_out"))
    assert first is not None
    assert first == always.goal_event(rule, _row("held_out"))
    assert first.name == "done"
    assert END <= first.occurred_at <= END + timedelta(days=1)
    assert Response(0.0, 0.0, 1).goal_event(rule, _row("pending")) is None
    assert Response(0.0, 1.0, 1).goal_event(rule, _row("pending")) is not None
    assert Response(0.0, 1.0, 1).goal_event(rule, _row("held_out")) is None


def test_goal_properties_meet_the_goal_filter() -> None:
    goal = Goal.model_validate(
        {"event": "e", "where": {"kind": ["a", "b"], "n": {"gt": 2}, "x": {"ne": 1}}}
    )
    assert satisfying(goal) == {"kind": "a", "n": 3}


def test_each_firing_of_a_user_draws_its_own_goal_event() -> None:
    rule = Rule.model_validate(
        {"id": "r", "send": {"email": "t"}, "goal": {"event": "done", "within": "1d"}}
    )
    always = Response(baseline=1.0, effect=0.0, seed=1)
    rows = [
        _row("pending"),
        _row("pending", occurrence="#2"),
        _row("pending", occurrence="event:7"),
        _row("pending", subject="account:A"),
    ]
    goals = [always.goal_event(rule, row) for row in rows]
    ids = [goal.message_id for goal in goals if goal is not None]
    # A v1 row keeps the id (and the draw) it always had; a repeat, an occurrence or an
    # account's firing is an event of its own, not dropped as a duplicate of the first.
    assert ids == ["sim-1-r-u1", "sim-1-r-u1-#2", "sim-1-r-u1-event:7", "sim-1-r-u1-account:A"]
    draws = {goal.occurred_at for goal in goals if goal is not None}
    assert len(draws) == 4


V2_RULES = """
rules:
  - id: each-lapse
    when:
      since: {event: login, occurrence: last}
      after: 12h
      expires: 6h
    once_per: occurrence
    send: {email: hello}
    goal: {event: login, within: 1d}
    holdout: 20%
    quiet_hours: false
  - id: trial-workspace
    audience:
      account: {plan: trial}
    when:
      since: account_created
      after: 1d
      expires: 1d
      account_not_done: [workflow_run]
    once_per: account
    send: {email: hello}
    goal: {event: workflow_run, within: 2d}
    holdout: 50%
  - id: save-reminder
    when: {after: 1h, not_done: [workflow_saved], expires: 5d}
    repeat_after: 1d
    send: {guide: save_tour}
    goal: {event: workflow_saved, within: 1d}
"""


def test_a_v2_history_is_what_its_replay_shows(tmp_path: Path, store: Store) -> None:
    """Occurrences, repeats and account firings through the simulated history: the users'
    responses (a goal login starts a new lapse) are events the replay then sees at their time."""
    write_pack(tmp_path, V2_RULES)
    population = demo.generate(150, seed=8, now=END, days=4)
    period = Period(END - timedelta(days=4), END, timedelta(hours=1))
    result = simulate(make_runner(tmp_path, store), population, period, Response(0.3, 0.4, 8))
    founders = {u.account_id for u in population.users if u.signup_source == "organic"}
    assert {a["id"] for a in store.reads.accounts()} == founders  # every workspace's group call
    ledger = store.reads.deliveries()

    def key(rule: str, user: str, subject: str, occurrence: str, held_out: bool) -> tuple[Any, ...]:
        return rule, user, subject, occurrence, held_out

    written = {
        key(d["rule_id"], d["user_id"], d["subject"], d["occurrence"], d["status"] == "held_out")
        for d in ledger
    }
    timeline = replay(make_runner(tmp_path, store), period).entries
    replayed = {
        key(e.rule_id, e.user_id, e.subject, e.occurrence, e.outcome == "held_out")
        for e in timeline
    }
    assert replayed == written
    # Every scope is there: several firings of one rule for one user (a goal login is a new
    # last login, hence a new lapse; a repeat a day later), and one per workspace.
    per_user = Counter((d["rule_id"], d["user_id"]) for d in ledger)
    assert max(n for (r, _), n in per_user.items() if r == "each-lapse") >= 2
    assert max(n for (r, _), n in per_user.items() if r == "save-reminder") >= 2
    workspaces = [d["subject"] for d in ledger if d["rule_id"] == "trial-workspace"]
    assert workspaces
    assert len(workspaces) == len(set(workspaces))
    # Each firing drew its own response: the logins answering a user's later lapses were not
    # dropped as duplicates of the first one's.
    with store.engine.connect() as connection:
        logins = Counter(
            user_id
            for (user_id,) in connection.execute(
                select(events.c.user_id).where(events.c.message_id.like("sim-8-each-lapse-%"))
            )
        )
    assert max(logins.values()) >= 2
    assert result.goals["each-lapse"] == sum(logins.values())
