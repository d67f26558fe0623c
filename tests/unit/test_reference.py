"""The reference evaluator: what the rule language means, case by case, at a fixed `now`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.model import Event, User, UserState
from engine.rules.language import Rule
from engine.rules.reference import Firing, evaluate

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
AFTER = timedelta(hours=24)
EXPIRES = timedelta(hours=48)
US = timedelta(microseconds=1)


def make_rule(
    *,
    when: dict[str, Any] | None = None,
    audience: dict[str, Any] | None = None,
    rule_id: str = "r1",
) -> Rule:
    return Rule.model_validate(
        {
            "id": rule_id,
            "audience": audience or {},
            "when": {"after": "24h", "expires": "48h", **(when or {})},
            "send": {"email": "welcome_explorer"},
        }
    )


def make_state(
    *,
    signed_up_at: datetime | None = NOW - AFTER,
    persona: str | None = "data_engineer",
    signup_source: str | None = "organic",
    traits: dict[str, Any] | None = None,
    events: tuple[Event, ...] = (),
    delivered: frozenset[str] = frozenset(),
    suppressed: bool = False,
) -> UserState:
    user = User(
        id="u1",
        email="ada@example.com",
        persona=persona,
        signup_source=signup_source,
        signed_up_at=signed_up_at,
        traits=traits or {},
    )
    return UserState(user, events, delivered, suppressed)


def event(name: str, at: datetime, event_id: int = 0, **properties: Any) -> Event:
    return Event("u1", name, at, properties, event_id)


def fires(rule: Rule, state: UserState) -> bool:
    return evaluate(rule, state, NOW) is not None


# ---- signup anchor window --------------------------------------------------------------


def test_signup_anchor_fires_exactly_at_anchor_plus_after() -> None:
    signed_up = NOW - AFTER
    assert evaluate(make_rule(), make_state(signed_up_at=signed_up), NOW) == Firing(
        user_id="u1", anchor_at=signed_up, anchor_event_id=None, suppressed=False, subject="u1"
    )


def test_signup_anchor_one_microsecond_early_does_not_fire() -> None:
    assert not fires(make_rule(), make_state(signed_up_at=NOW - AFTER + US))


def test_signup_anchor_fires_exactly_at_expiry() -> None:
    assert fires(make_rule(), make_state(signed_up_at=NOW - AFTER - EXPIRES))


def test_signup_anchor_one_microsecond_after_expiry_does_not_fire() -> None:
    assert not fires(make_rule(), make_state(signed_up_at=NOW - AFTER - EXPIRES - US))


def test_signup_anchor_inside_the_window_fires() -> None:
    assert fires(make_rule(), make_state(signed_up_at=NOW - AFTER - timedelta(hours=10)))


def test_no_signup_time_never_fires() -> None:
    assert not fires(make_rule(), make_state(signed_up_at=None))


def test_after_zero_fires_at_once() -> None:
    rule = make_rule(when={"after": "0", "expires": "1h"})
    assert fires(rule, make_state(signed_up_at=NOW))
    assert not fires(rule, make_state(signed_up_at=NOW + US))


def test_signup_in_the_future_does_not_fire() -> None:
    assert not fires(make_rule(when={"after": "0"}), make_state(signed_up_at=NOW + timedelta(1)))


# ---- event anchor ----------------------------------------------------------------------


def event_rule(**when: Any) -> Rule:
    return make_rule(when={"since": "connection_created", "after": "1h", "expires": "2h", **when})


def test_event_anchor_fires_in_its_window() -> None:
    at = NOW - timedelta(hours=2)
    state = make_state(events=(event("connection_created", at, 5),))
    assert evaluate(event_rule(), state, NOW) == Firing("u1", at, 5, False, "u1")


def test_event_anchor_window_is_inclusive_at_both_ends() -> None:
    rule = event_rule()
    assert fires(rule, make_state(events=(event("connection_created", NOW - timedelta(hours=1)),)))
    assert fires(rule, make_state(events=(event("connection_created", NOW - timedelta(hours=3)),)))
    assert not fires(
        rule, make_state(events=(event("connection_created", NOW - timedelta(hours=1) + US),))
    )
    assert not fires(
        rule, make_state(events=(event("connection_created", NOW - timedelta(hours=3) - US),))
    )


def test_event_anchor_ignores_signup_time() -> None:
    state = make_state(
        signed_up_at=None, events=(event("connection_created", NOW - timedelta(hours=2), 1),)
    )
    assert fires(event_rule(), state)


def test_no_anchor_event_never_fires() -> None:
    state = make_state(events=(event("workflow_saved", NOW - timedelta(hours=2)),))
    assert not fires(event_rule(), state)


def test_event_anchor_is_the_first_occurrence() -> None:
    # The first matching occurrence is outside the window: a later one does not re-anchor.
    state = make_state(
        events=(
            event("connection_created", NOW - timedelta(hours=2), 2),
            event("connection_created", NOW - timedelta(hours=10), 1),
        )
    )
    assert not fires(event_rule(), state)


def test_event_anchor_first_occurrence_inside_window_is_used() -> None:
    first = NOW - timedelta(hours=2, minutes=30)
    state = make_state(
        events=(
            event("connection_created", NOW - timedelta(hours=1, minutes=30), 9),
            event("connection_created", first, 4),
        )
    )
    assert evaluate(event_rule(), state, NOW) == Firing("u1", first, 4, False, "u1")


def test_non_matching_where_event_does_not_anchor() -> None:
    rule = event_rule(where={"direction": "ingest"})
    anchor = NOW - timedelta(hours=2)
    state = make_state(
        events=(
            event("connection_created", NOW - timedelta(hours=10), 1, direction="export"),
            event("connection_created", anchor, 2, direction="ingest"),
        )
    )
    assert evaluate(rule, state, NOW) == Firing("u1", anchor, 2, False, "u1")


def test_earlier_matching_where_event_prevents_firing() -> None:
    rule = event_rule(where={"direction": "ingest"})
    state = make_state(
        events=(
            event("connection_created", NOW - timedelta(hours=10), 1, direction="ingest"),
            event("connection_created", NOW - timedelta(hours=2), 2, direction="ingest"),
        )
    )
    assert not fires(rule, state)


def test_where_with_absent_property_does_not_match() -> None:
    rule = event_rule(where={"direction": "ingest"})
    state = make_state(events=(event("connection_created", NOW - timedelta(hours=2), 1),))
    assert not fires(rule, state)


def test_where_operators_apply_to_properties() -> None:
    rule = event_rule(where={"rows": {"gte": 100}, "direction": ["ingest", "both"]})
    at = NOW - timedelta(hours=2)
    assert fires(
        rule, make_state(events=(event("connection_created", at, 1, rows=100, direction="both"),))
    )
    assert not fires(
        rule, make_state(events=(event("connection_created", at, 1, rows=99, direction="both"),))
    )
    assert not fires(
        rule, make_state(events=(event("connection_created", at, 1, rows="100", direction="both"),))
    )


def test_ties_at_the_same_instant_are_broken_by_event_id() -> None:
    at = NOW - timedelta(hours=2)
    state = make_state(
        events=(
            event("connection_created", at, 7),
            event("connection_created", at, 3),
            event("connection_created", at, 5),
        )
    )
    firing = evaluate(event_rule(), state, NOW)
    assert firing is not None
    assert firing.anchor_event_id == 3


def test_tie_break_uses_the_matching_event() -> None:
    at = NOW - timedelta(hours=2)
    rule = event_rule(where={"direction": "ingest"})
    state = make_state(
        events=(
            event("connection_created", at, 7, direction="ingest"),
            event("connection_created", at, 3, direction="export"),
        )
    )
    firing = evaluate(rule, state, NOW)
    assert firing is not None
    assert firing.anchor_event_id == 7


# ---- not_done / done -------------------------------------------------------------------


def signup_rule(**when: Any) -> Rule:
    return make_rule(when=when)


SIGNUP = NOW - timedelta(hours=30)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (SIGNUP - US, True),  # before the anchor: ignored
        (SIGNUP, False),  # at the anchor instant: counts
        (SIGNUP + timedelta(hours=3), False),
        (NOW, False),  # at now: counts
        (NOW + US, True),  # after now: ignored
    ],
)
def test_not_done_window(at: datetime, expected: bool) -> None:
    rule = signup_rule(not_done=["connection_created", "workflow_saved"])
    state = make_state(signed_up_at=SIGNUP, events=(event("workflow_saved", at),))
    assert fires(rule, state) is expected


def test_not_done_ignores_other_events() -> None:
    rule = signup_rule(not_done=["connection_created"])
    state = make_state(signed_up_at=SIGNUP, events=(event("email_verified", SIGNUP),))
    assert fires(rule, state)


def test_not_done_relative_to_event_anchor() -> None:
    rule = event_rule(not_done=["workflow_saved"])
    anchor = NOW - timedelta(hours=2)
    before = make_state(
        events=(event("connection_created", anchor, 1), event("workflow_saved", anchor - US, 2))
    )
    at_anchor = make_state(
        events=(event("connection_created", anchor, 1), event("workflow_saved", anchor, 2))
    )
    assert fires(rule, before)
    assert not fires(rule, at_anchor)


@pytest.mark.parametrize(
    ("verified_at", "expected"),
    [
        (SIGNUP - US, False),
        (SIGNUP, True),
        (SIGNUP + timedelta(hours=1), True),
        (NOW, True),
        (NOW + US, False),
    ],
)
def test_done_window(verified_at: datetime, expected: bool) -> None:
    rule = signup_rule(done=["email_verified"])
    state = make_state(signed_up_at=SIGNUP, events=(event("email_verified", verified_at),))
    assert fires(rule, state) is expected


def test_done_requires_each_listed_event() -> None:
    rule = signup_rule(done=["email_verified", "connection_created"])
    inside = SIGNUP + timedelta(hours=1)
    both = make_state(
        signed_up_at=SIGNUP,
        events=(event("email_verified", inside, 1), event("connection_created", inside, 2)),
    )
    one = make_state(signed_up_at=SIGNUP, events=(event("email_verified", inside, 1),))
    twice_one = make_state(
        signed_up_at=SIGNUP,
        events=(event("email_verified", inside, 1), event("email_verified", inside, 2)),
    )
    one_outside = make_state(
        signed_up_at=SIGNUP,
        events=(event("email_verified", inside, 1), event("connection_created", SIGNUP - US, 2)),
    )
    assert fires(rule, both)
    assert not fires(rule, one)
    assert not fires(rule, twice_one)
    assert not fires(rule, one_outside)


def test_done_and_not_done_together() -> None:
    rule = signup_rule(done=["email_verified"], not_done=["connection_created"])
    inside = SIGNUP + timedelta(hours=1)
    good = make_state(signed_up_at=SIGNUP, events=(event("email_verified", inside),))
    bad = make_state(
        signed_up_at=SIGNUP,
        events=(event("email_verified", inside, 1), event("connection_created", inside, 2)),
    )
    assert fires(rule, good)
    assert not fires(rule, bad)


# ---- delivered -------------------------------------------------------------------------


def test_delivered_rule_never_fires() -> None:
    rule = make_rule(rule_id="r1")
    assert not fires(rule, make_state(delivered=frozenset({"r1"})))
    assert fires(rule, make_state(delivered=frozenset({"r2"})))


# ---- audience --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "persona", "expected"),
    [
        ("data_engineer", "data_engineer", True),
        ("data_engineer", "analyst", False),
        ("data_engineer", None, False),
        (["analyst", "data_engineer"], "data_engineer", True),
        (["analyst", "data_engineer"], "analyst", True),
        (["analyst", "data_engineer"], "sales", False),
        (["analyst", "data_engineer"], None, False),
        ({"eq": "analyst"}, None, False),
        ({"ne": "analyst"}, None, True),
        ({"ne": "analyst"}, "analyst", False),
        ({"ne": "analyst"}, "sales", True),
        ({"not_in": ["analyst", "sales"]}, None, True),
        ({"not_in": ["analyst", "sales"]}, "sales", False),
        ({"exists": True}, None, False),
        ({"exists": False}, None, True),
        ({"exists": True}, "sales", True),
    ],
)
def test_persona(condition: Any, persona: str | None, expected: bool) -> None:
    rule = make_rule(audience={"persona": condition})
    assert fires(rule, make_state(persona=persona)) is expected


@pytest.mark.parametrize(
    ("condition", "source", "expected"),
    [
        ("organic", "organic", True),
        ("organic", "invite", False),
        ("organic", None, False),
        (["invite", "organic"], "invite", True),
        ({"ne": "invite"}, None, True),
    ],
)
def test_signup_source(condition: Any, source: str | None, expected: bool) -> None:
    rule = make_rule(audience={"signup_source": condition})
    assert fires(rule, make_state(signup_source=source)) is expected


def test_audience_keys_are_anded() -> None:
    rule = make_rule(
        audience={
            "persona": "data_engineer",
            "signup_source": "organic",
            "traits": {"plan": "free"},
        }
    )
    assert fires(rule, make_state(traits={"plan": "free"}))
    assert not fires(rule, make_state(traits={"plan": "paid"}))
    assert not fires(rule, make_state(signup_source="invite", traits={"plan": "free"}))
    assert not fires(rule, make_state(persona="analyst", traits={"plan": "free"}))


def test_audience_mismatch_stops_an_otherwise_due_firing() -> None:
    rule = make_rule(audience={"persona": "analyst"})
    assert not fires(rule, make_state(persona="data_engineer"))


@pytest.mark.parametrize(
    ("condition", "traits", "expected"),
    [
        # type-strict equality
        ({"eq": "5"}, {"n": 5}, False),
        ({"eq": 5}, {"n": "5"}, False),
        ({"eq": 1}, {"n": True}, False),
        ({"eq": True}, {"n": 1}, False),
        ({"eq": 0}, {"n": False}, False),
        ({"eq": 1.0}, {"n": 1}, True),
        ({"eq": 1}, {"n": 1.0}, True),
        ({"eq": True}, {"n": True}, True),
        ({"eq": False}, {"n": False}, True),
        ({"eq": "free"}, {"n": "free"}, True),
        ({"eq": "free"}, {"n": "Free"}, False),
        ({"eq": "free"}, {}, False),
        ({"eq": "free"}, {"n": None}, False),
        ({"eq": "free"}, {"n": ["free"]}, False),
        ({"in": ["free", "trial"]}, {"n": "trial"}, True),
        ({"in": ["free", "trial"]}, {"n": "paid"}, False),
        ({"in": [1, 2]}, {"n": 2.0}, True),
        ({"in": [1, 2]}, {"n": "1"}, False),
        ({"in": ["free"]}, {}, False),
        # ne / not_in match an absent trait and other kinds
        ({"ne": "free"}, {}, True),
        ({"ne": "free"}, {"n": None}, True),
        ({"ne": "free"}, {"n": "free"}, False),
        ({"ne": "free"}, {"n": "paid"}, True),
        ({"ne": 5}, {"n": "5"}, True),
        ({"ne": 1}, {"n": True}, True),
        ({"ne": 1}, {"n": 1.0}, False),
        ({"not_in": ["free", "trial"]}, {}, True),
        ({"not_in": ["free", "trial"]}, {"n": "trial"}, False),
        ({"not_in": ["free", "trial"]}, {"n": "paid"}, True),
        # comparisons: numbers only
        ({"gt": 5}, {"n": 6}, True),
        ({"gt": 5}, {"n": 5}, False),
        ({"gt": 5}, {"n": 5.5}, True),
        ({"gt": 5}, {"n": "10"}, False),
        ({"gt": 0}, {"n": True}, False),
        ({"gt": 5}, {}, False),
        ({"gte": 5}, {"n": 5}, True),
        ({"gte": 5}, {"n": 4.999}, False),
        ({"lt": 5}, {"n": 4}, True),
        ({"lt": 5}, {"n": 5}, False),
        ({"lt": 5}, {"n": "1"}, False),
        ({"lt": 5}, {}, False),
        ({"lte": 5}, {"n": 5}, True),
        ({"lte": 5}, {"n": 5.001}, False),
        ({"gte": 1, "lt": 10}, {"n": 9}, True),
        ({"gte": 1, "lt": 10}, {"n": 10}, False),
        # exists
        ({"exists": True}, {"n": 0}, True),
        ({"exists": True}, {"n": ""}, True),
        ({"exists": True}, {"n": False}, True),
        ({"exists": True}, {}, False),
        ({"exists": False}, {}, True),
        ({"exists": False}, {"n": "x"}, False),
        ({"exists": True, "ne": "x"}, {"n": "y"}, True),
        ({"exists": True, "ne": "x"}, {}, False),
    ],
)
def test_trait_conditions(condition: Any, traits: dict[str, Any], expected: bool) -> None:
    rule = make_rule(audience={"traits": {"n": condition}})
    assert fires(rule, make_state(traits=traits)) is expected


def test_scalar_and_list_trait_shorthands() -> None:
    assert fires(
        make_rule(audience={"traits": {"plan": "free"}}), make_state(traits={"plan": "free"})
    )
    list_rule = make_rule(audience={"traits": {"plan": ["free", "trial"]}})
    assert fires(list_rule, make_state(traits={"plan": "trial"}))
    assert not fires(list_rule, make_state(traits={"plan": "paid"}))


def test_several_trait_conditions_are_anded() -> None:
    rule = make_rule(audience={"traits": {"plan": "free", "seats": {"gte": 3}}})
    assert fires(rule, make_state(traits={"plan": "free", "seats": 3}))
    assert not fires(rule, make_state(traits={"plan": "free", "seats": 2}))
    assert not fires(rule, make_state(traits={"plan": "free"}))


# ---- the firing ------------------------------------------------------------------------


@pytest.mark.parametrize("suppressed", [True, False])
def test_suppressed_flag_is_passed_through(suppressed: bool) -> None:
    firing = evaluate(make_rule(), make_state(suppressed=suppressed), NOW)
    assert firing is not None
    assert firing.suppressed is suppressed
    assert firing.user_id == "u1"
    assert firing.anchor_at == NOW - AFTER
    assert firing.anchor_event_id is None


def test_evaluate_depends_only_on_now() -> None:
    rule = make_rule()
    state = make_state(signed_up_at=NOW - AFTER)
    assert evaluate(rule, state, NOW - US) is None
    assert evaluate(rule, state, NOW) is not None
    assert evaluate(rule, state, NOW + EXPIRES) is not None
    assert evaluate(rule, state, NOW + EXPIRES + US) is None
