"""Rule language v2 on random data: the SQL evaluator against the reference evaluator, on
SQLite and PostgreSQL. Every v2 construct is drawn: recency windows (`within`), counts, `where`
on items, last-occurrence and account-created anchors, occurrence keys, `once_per:
occurrence | account`, `repeat_after`, account traits and the account's events, over users with
and without accounts and a ledger that already holds earlier firings of every kind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from engine.decide.firing import Candidate
from engine.rules import reference
from engine.rules.language import Rule
from engine.sql.candidates import candidates as candidates_query
from engine.sql.schema import deliveries, events, metadata
from engine.store import AccountUpsert, EventRecord, Store, UserUpsert

BASE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NAMES = ("a", "b", "c")
VALUES = (1, 2, "x", True)
KEYS = ("w1", "w2", 7, 2.5, True)
ACCOUNTS = ("A", "B", None)
minutes = st.integers(min_value=-8, max_value=8).map(lambda step: step * 30)


def _condition(draw: st.DrawFn) -> Any:
    return draw(
        st.one_of(
            st.sampled_from(VALUES),
            st.builds(lambda v: {"ne": v}, st.sampled_from(VALUES)),
            st.builds(lambda v: {"gte": v}, st.sampled_from([1, 2])),
            st.builds(lambda v: {"exists": v}, st.booleans()),
        )
    )


@st.composite
def items(draw: st.DrawFn, *, counts: bool) -> Any:
    name = draw(st.sampled_from(NAMES))
    if draw(st.integers(0, 3)) == 0:
        return name
    item: dict[str, Any] = {"event": name}
    if draw(st.booleans()):
        item["within"] = f"{draw(st.sampled_from([30, 90, 240]))}m"
    if draw(st.integers(0, 2)) == 0:
        item["where"] = {"p": _condition(draw)}
    if counts and draw(st.booleans()):
        op = draw(st.sampled_from(["eq", "gte", "gt", "lte", "lt"]))
        item["count"] = {op: draw(st.integers(0, 3))}
    return item


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    anchor = draw(st.sampled_from(["signed_up", "account_created", *NAMES]))
    once_per = draw(
        st.sampled_from(
            ["user", "account", "occurrence"] if anchor in NAMES else ["user", "account"]
        )
    )
    when: dict[str, Any] = {
        "after": f"{draw(st.sampled_from([0, 30, 60, 120]))}m",
        "expires": f"{draw(st.sampled_from([0, 60, 240, 600, 1200]))}m",
    }
    if anchor in NAMES:
        since: dict[str, Any] = {
            "event": anchor,
            "occurrence": draw(st.sampled_from(["first", "last"])),
        }
        if draw(st.integers(0, 3)) == 0:
            since["where"] = {"p": _condition(draw)}
        if once_per == "occurrence" and draw(st.booleans()):
            since["key"] = "k"
        when["since"] = since
    else:
        when["since"] = anchor
    for field, counts in (
        ("not_done", False),
        ("done", True),
        ("account_not_done", False),
        ("account_done", True),
    ):
        # Each field is drawn now and then, so that most rules fire for someone.
        if draw(st.integers(0, 2)) != 0:
            continue
        drawn = draw(st.lists(items(counts=counts), min_size=1, max_size=2))
        # A bare not_done on the anchor event is an error in the language itself.
        drawn = [i for i in drawn if not (field == "not_done" and i in (anchor, {"event": anchor}))]
        if drawn:
            when[field] = drawn
    rule: dict[str, Any] = {"id": "r", "when": when, "send": {"email": "t"}, "once_per": once_per}
    if once_per != "occurrence" and draw(st.booleans()):
        rule["repeat_after"] = f"{draw(st.sampled_from([60, 180]))}m"
    if draw(st.integers(0, 4)) == 0:
        rule["audience"] = {"account": {"plan": _condition(draw)}}
    return Rule.model_validate(rule)


@dataclass(frozen=True)
class Past:
    """An earlier firing in the ledger: whose, against what, which occurrence, when."""

    user: int
    other_scope: bool  # counted against the scope the rule does not use (now and then)
    occurrence: str  # '', '#2', 'event' (one of the user's events), 'key'
    event: int
    created: int


@dataclass(frozen=True)
class Population:
    users: list[UserUpsert]
    events: list[EventRecord]
    accounts: list[AccountUpsert]
    past: list[Past]


@st.composite
def populations(draw: st.DrawFn) -> Population:
    users, recorded = [], []
    for index in range(draw(st.integers(min_value=1, max_value=6))):
        user_id = f"u{index}"
        signed_up = (
            None if draw(st.integers(0, 9)) == 0 else BASE + timedelta(minutes=draw(minutes))
        )
        users.append(
            UserUpsert(
                id=user_id,
                traits={},
                signed_up_at=signed_up,
                account_id=draw(st.sampled_from(ACCOUNTS)),
                email=f"{user_id}@example.com",
            )
        )
        for _ in range(draw(st.integers(min_value=0, max_value=8))):
            properties: dict[str, Any] = {}
            if draw(st.booleans()):
                properties["p"] = draw(st.sampled_from(VALUES))
            if draw(st.booleans()):
                properties["k"] = draw(st.sampled_from(KEYS))
            at = BASE + timedelta(minutes=draw(minutes))
            recorded.append(
                EventRecord(user_id, draw(st.sampled_from(NAMES)), at, properties, None)
            )
    accounts = [
        AccountUpsert(name, {"plan": draw(st.sampled_from(VALUES))})
        for name in ("A", "B")
        if draw(st.booleans())
    ]
    past = draw(
        st.lists(
            st.builds(
                Past,
                user=st.integers(0, len(users) - 1),
                other_scope=st.integers(0, 4).map(lambda n: n == 0),
                occurrence=st.sampled_from(["", "", "#2", "event", "event", "key"]),
                event=st.integers(0, 20),
                created=st.integers(-8, 8),
            ),
            max_size=4,
        )
    )
    return Population(users, recorded, accounts, past)


def _reset(store: Store) -> None:
    with store.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


def _seed(store: Store, population: Population, rule: Rule) -> None:
    store.people.upsert_users(population.users, BASE)
    store.people.insert_events(population.events, BASE)
    store.people.upsert_accounts(population.accounts, BASE)
    with store.engine.begin() as connection:
        ids = list(connection.execute(select(events.c.id).order_by(events.c.id)).scalars())
        assert len(ids) == len(population.events)
        rows = {}
        for past in population.past:
            user = population.users[past.user]
            subject = user.id
            if (rule.once_per == "account") != past.other_scope:
                subject = f"account:{user.account_id}" if user.account_id else f"user:{user.id}"
            occurrence = past.occurrence
            if occurrence == "event":
                occurrence = f"event:{ids[past.event % len(ids)]}" if ids else ""
            elif occurrence == "key":
                occurrence = "key:w1"
            at = BASE + timedelta(minutes=30 * past.created)
            rows[(subject, occurrence)] = {
                "rule_id": "r",
                "user_id": user.id,
                "subject": subject,
                "occurrence": occurrence,
                "status": "sent",
                "anchor_at": at,
                "fire_at": at,
                "holdout": False,
                "attempts": 0,
                "created_at": at,
                "updated_at": at,
            }
        if rows:
            connection.execute(deliveries.insert(), list(rows.values()))


Key = tuple[str, datetime, int | None, str, str]


def _key(c: Candidate | reference.Firing) -> Key:
    if isinstance(c, Candidate):
        return (c.user_id, c.anchor_at, c.anchor_event_id, c.subject, c.occurrence)
    return (c.user_id, c.anchor_at, c.anchor_event_id, c.subject, c.occurrence)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rule=rules(), population=populations(), offset=st.integers(-2, 12).map(lambda s: s * 30))
def test_v2_sql_evaluator_agrees_with_reference(
    store: Store, rule: Rule, population: Population, offset: int
) -> None:
    _reset(store)
    _seed(store, population, rule)
    now = BASE + timedelta(minutes=offset)

    query = candidates_query(rule, now)
    sql = sorted(_key(c) for batch in store.ledger.candidates(query) for c in batch)
    expected = sorted(_key(f) for f in reference.firings(rule, store.states.world(), now))
    assert sql == expected, f"rule={rule.model_dump(exclude_defaults=True)} now={now}"
