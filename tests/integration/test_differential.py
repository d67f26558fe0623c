"""The SQL evaluator against the reference evaluator, on random users, events, rules and
times, on SQLite and PostgreSQL: they must find exactly the same firings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from engine.decide.firing import Candidate
from engine.rules import reference
from engine.rules.language import Rule
from engine.sql.candidates import candidates as candidates_query
from engine.sql.schema import deliveries, metadata
from engine.store import EventRecord, Store, UserUpsert

BASE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
NAMES = ("a", "b", "c")
VALUES = (1, 2, 2.5, "x", "y", True, False)
PERSONAS = ("de", "an", None)

scalar = st.sampled_from(VALUES)
# Half-hour steps: boundaries (anchor + after == now, events at now, ties) happen often.
minutes = st.integers(min_value=-8, max_value=8).map(lambda step: step * 30)


@st.composite
def conditions(draw: st.DrawFn, *, numbers_only: bool = False) -> Any:
    kind = draw(st.sampled_from(["scalar", "list", "ops"]))
    if kind == "scalar":
        return draw(scalar)
    if kind == "list":
        return draw(st.lists(scalar, min_size=1, max_size=3))
    ops = draw(st.sampled_from(["in", "not_in", "eq", "ne", "gt", "gte", "lt", "lte", "exists"]))
    if ops in ("in", "not_in"):
        return {ops: draw(st.lists(scalar, min_size=1, max_size=3))}
    if ops in ("gt", "gte", "lt", "lte"):
        return {ops: draw(st.sampled_from([0, 1, 2, 2.5, 3]))}
    if ops == "exists":
        return {"exists": draw(st.booleans())}
    return {ops: draw(scalar)}


persona_conditions = st.one_of(
    st.none(),
    st.sampled_from(["de", "an"]),
    st.lists(st.sampled_from(["de", "an", "zz"]), min_size=1, max_size=2),
    st.builds(lambda v: {"ne": v}, st.sampled_from(["de", "an"])),
    st.builds(lambda v: {"not_in": v}, st.lists(st.sampled_from(["de", "an"]), min_size=1)),
    st.builds(lambda v: {"exists": v}, st.booleans()),
)


@st.composite
def rules(draw: st.DrawFn) -> Rule:
    since = draw(st.sampled_from(["signed_up", *NAMES]))
    when: dict[str, Any] = {
        "since": since,
        "after": f"{draw(st.sampled_from([0, 30, 60, 120]))}m",
        "expires": f"{draw(st.sampled_from([0, 60, 180, 600]))}m",
        "not_done": draw(
            st.lists(st.sampled_from([n for n in NAMES if n != since]), max_size=2, unique=True)
        ),
        "done": draw(st.lists(st.sampled_from(NAMES), max_size=2, unique=True)),
    }
    if since != "signed_up" and draw(st.booleans()):
        when["where"] = {"p": draw(conditions())}
    audience: dict[str, Any] = {}
    persona = draw(persona_conditions)
    if persona is not None:
        audience["persona"] = persona
    if draw(st.booleans()):
        audience["traits"] = {"k": draw(conditions())}
    return Rule.model_validate(
        {"id": "r", "audience": audience, "when": when, "send": {"email": "t"}}
    )


@st.composite
def populations(draw: st.DrawFn) -> tuple[list[UserUpsert], list[EventRecord], set[str]]:
    users, events = [], []
    for index in range(draw(st.integers(min_value=1, max_value=6))):
        user_id = f"u{index}"
        traits = {"k": draw(scalar)} if draw(st.booleans()) else {}
        signed_up = (
            None if draw(st.integers(0, 9)) == 0 else BASE + timedelta(minutes=draw(minutes))
        )
        users.append(
            UserUpsert(
                id=user_id,
                traits=traits,
                persona=draw(st.sampled_from(PERSONAS)),
                signed_up_at=signed_up,
                email=f"{user_id}@example.com" if draw(st.booleans()) else None,
            )
        )
        for _ in range(draw(st.integers(min_value=0, max_value=6))):
            properties = {"p": draw(scalar)} if draw(st.booleans()) else {}
            at = BASE + timedelta(minutes=draw(minutes), microseconds=draw(st.sampled_from([0, 1])))
            events.append(EventRecord(user_id, draw(st.sampled_from(NAMES)), at, properties, None))
    delivered = draw(st.sets(st.sampled_from([u.id for u in users])))
    return users, events, delivered


def _reset(store: Store) -> None:
    with store.engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(delete(table))


def _seed(
    store: Store,
    users: list[UserUpsert],
    events: list[EventRecord],
    delivered: set[str],
    suppressed: set[str],
) -> None:
    store.people.upsert_users(users, BASE)
    store.people.insert_events(events, BASE)
    with store.engine.begin() as connection:
        for user_id in sorted(delivered):
            connection.execute(
                deliveries.insert().values(
                    rule_id="r",
                    user_id=user_id,
                    status="sent",
                    anchor_at=BASE,
                    fire_at=BASE,
                    holdout=False,
                    attempts=0,
                    created_at=BASE,
                    updated_at=BASE,
                )
            )
    for user_id in sorted(suppressed):
        store.people.suppress(BASE, user_id=user_id)


def _key(c: Candidate | reference.Firing) -> tuple[str, datetime, int | None, bool]:
    if isinstance(c, Candidate):
        return (c.user_id, c.anchor_at, c.anchor_event_id, c.suppressed)
    return (c.user_id, c.anchor_at, c.anchor_event_id, c.suppressed)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rule=rules(),
    population=populations(),
    offset=minutes,
    suppressed=st.sets(st.sampled_from(["u0", "u1", "u2"])),
)
def test_sql_evaluator_agrees_with_reference(
    store: Store,
    rule: Rule,
    population: tuple[list[UserUpsert], list[EventRecord], set[str]],
    offset: int,
    suppressed: set[str],
) -> None:
    users, events, delivered = population
    _reset(store)
    _seed(store, users, events, delivered, suppressed & {u.id for u in users})
    now = BASE + timedelta(minutes=offset)

    sql = {_key(c) for batch in store.ledger.candidates(candidates_query(rule, now)) for c in batch}
    expected = {
        _key(firing)
        for state in store.states.user_states()
        if (firing := reference.evaluate(rule, state, now)) is not None
    }
    assert sql == expected, f"rule={rule.model_dump(exclude_defaults=True)} now={now}"
