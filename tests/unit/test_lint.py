"""`check`'s semantic lint (engine.rules.lint). Every "never fires" check is proven against the
reference evaluator: the flagged rule has no firing on a small population at any `now` of a
fine grid, while a near miss that the lint lets through does fire on the same population (so
the population could have shown a firing). A property test does the same on random rules."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.model import Event, User, UserState, World
from engine.rules import reference
from engine.rules.conditions import kind_of, py_condition
from engine.rules.language import Ops, Rule, RuleSet, load_rules
from engine.rules.lint import (
    Finding,
    audience_classes,
    cap_groups,
    lint,
    never_fires,
    representatives,
    satisfiable,
)
from engine.rules.quiet_hours import QuietHours
from tests.conftest import ROOT

BASE = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
# Every event and every boundary below is on the half hour: a quarter-hour grid meets them all.
NOWS = [BASE + timedelta(minutes=15 * step) for step in range(-8, 4 * 30)]


def _event(user: str, name: str, hours: float, event_id: int, **properties: Any) -> Event:
    return Event(user, name, BASE + hours * H, properties, event_id)


def _population() -> World:
    """u1 and u2 share account A (u2 signed up an hour later, and did `a` before signing up),
    u3 is alone, u4 (account B) never did `a`."""
    users = [
        User(id="u1", persona="data_engineer", signed_up_at=BASE, account_id="A"),
        User(id="u2", persona="data_engineer", signed_up_at=BASE + H, account_id="A"),
        User(id="u3", persona="data_engineer", signed_up_at=BASE),
        User(id="u4", persona="data_engineer", signed_up_at=BASE, account_id="B"),
    ]
    events = {
        "u1": [
            _event("u1", "a", 0, 1, p=1),
            _event("u1", "a", 1, 2, p="x"),
            _event("u1", "b", 2, 3),
            _event("u1", "a", 3, 4, p=1),
        ],
        "u2": [_event("u2", "a", 0.5, 5, p=1), _event("u2", "a", 4, 6, p="x")],
        "u3": [_event("u3", "a", 0, 7), _event("u3", "a", 5, 8, p=1)],
        "u4": [_event("u4", "b", 1, 9)],
    }
    states = tuple(UserState(user, tuple(events[user.id])) for user in users)
    return World(states, {"A": {"plan": "pro"}})


WORLD = _population()


def make_rule(when: dict[str, Any], **fields: Any) -> Rule:
    return Rule.model_validate(
        {
            "id": "r",
            "when": {"expires": "12h", **when},
            "send": {"email": "t"},
            **fields,
        }
    )


def fires(rule: Rule, world: World = WORLD) -> bool:
    return any(reference.firings(rule, world, now) for now in NOWS)


def codes(rule: Rule) -> list[str]:
    return [code for code, _ in never_fires(rule)]


# Each case: (flagged rule, its check, near miss that is not flagged and fires).
NEVER_FIRES: dict[str, tuple[dict[str, Any], str, dict[str, Any]]] = {
    "done and not_done, both bare": (
        {"done": ["a"], "not_done": ["a"]},
        "contradictory-items",
        {"done": ["a"], "not_done": ["b"]},
    ),
    "done and not_done, the same within": (
        {"done": [{"event": "a", "within": "1h"}], "not_done": [{"event": "a", "within": "1h"}]},
        "contradictory-items",
        {"done": [{"event": "a", "within": "1h"}], "not_done": [{"event": "a", "within": "30m"}]},
    ),
    "not_done within reaches past the anchor": (
        {
            "after": "1h",
            "expires": "2h",
            "done": ["a"],
            "not_done": [{"event": "a", "within": "3h"}],
        },
        "contradictory-items",
        {
            "after": "1h",
            "expires": "2h",
            "done": ["a"],
            "not_done": [{"event": "a", "within": "2h"}],
        },
    ),
    "done within lies inside a bare not_done": (
        {"after": "2h", "done": [{"event": "a", "within": "1h"}], "not_done": ["a"]},
        "contradictory-items",
        {"after": "30m", "done": [{"event": "a", "within": "1h"}], "not_done": ["a"]},
    ),
    "done where implies not_done where": (
        {"done": [{"event": "a", "where": {"p": 1}}], "not_done": ["a"]},
        "contradictory-items",
        {"done": ["a"], "not_done": [{"event": "a", "where": {"p": 1}}]},
    ),
    "done needs two, not_done forbids one": (
        {"done": [{"event": "a", "count": {"gte": 2}}], "not_done": ["a"]},
        "contradictory-items",
        {"done": [{"event": "a", "count": {"lt": 2}}], "not_done": ["a"]},
    ),
    "account_done and account_not_done": (
        {"account_done": ["a"], "account_not_done": ["a"]},
        "contradictory-items",
        {"account_done": ["a"], "account_not_done": ["b"]},
    ),
    "own done and account_not_done": (
        {"done": ["a"], "account_not_done": ["a"]},
        "contradictory-items",
        {"account_done": ["a"], "not_done": ["a"]},
    ),
    "a count no number satisfies": (
        {"done": [{"event": "a", "count": {"gt": 3, "lt": 2}}]},
        "impossible-count",
        {"done": [{"event": "a", "count": {"gt": 1, "lt": 3}}]},
    ),
    "a done where no value satisfies": (
        {"done": [{"event": "a", "where": {"p": {"in": [1], "not_in": [1]}}}]},
        "impossible-where",
        {"done": [{"event": "a", "where": {"p": 1}}]},
    ),
    "an anchor where no value satisfies": (
        {"since": {"event": "a", "where": {"p": {"gt": 2, "lt": 1}}}},
        "impossible-anchor",
        {"since": {"event": "a", "where": {"p": {"gte": 1}}}},
    ),
    "not_done sees the anchor (where)": (
        {
            "since": {"event": "a", "where": {"p": 1}},
            "not_done": [{"event": "a", "where": {"p": 1}}],
        },
        "not-done-sees-anchor",
        {
            "since": {"event": "a", "where": {"p": 1}},
            "not_done": [{"event": "a", "where": {"p": "x"}}],
        },
    ),
    "not_done sees the anchor (within)": (
        {
            "since": "a",
            "after": "1h",
            "expires": "2h",
            "not_done": [{"event": "a", "within": "3h"}],
        },
        "not-done-sees-anchor",
        {
            "since": "a",
            "after": "1h",
            "expires": "2h",
            "not_done": [{"event": "a", "within": "30m"}],
        },
    ),
    "account_not_done sees the anchor": (
        {"since": "a", "account_not_done": ["a"]},
        "not-done-sees-anchor",
        {"since": "a", "account_not_done": ["b"]},
    ),
    "done within less than after, on the last anchor": (
        {
            "since": {"event": "a", "occurrence": "last"},
            "after": "2h",
            "done": [{"event": "a", "within": "1h"}],
        },
        "done-after-last-anchor",
        {
            "since": {"event": "a", "occurrence": "last"},
            "after": "2h",
            "done": [{"event": "a", "within": "2h"}],  # `within` = `after`: the anchor itself
        },
    ),
    "done within less than after, on the first anchor is fine": (
        {
            "since": {"event": "a", "occurrence": "last"},
            "after": "2h",
            "done": [{"event": "a", "within": "1h", "where": {"p": 1}}],
        },
        "done-after-last-anchor",
        {
            "since": {"event": "a", "occurrence": "first"},
            "after": "2h",
            "done": [{"event": "a", "within": "1h", "where": {"p": 1}}],
        },
    ),
}


@pytest.mark.parametrize("case", list(NEVER_FIRES), ids=list(NEVER_FIRES))
def test_each_never_fires_check_is_proven_by_the_reference_evaluator(case: str) -> None:
    flagged, code, near_miss = NEVER_FIRES[case]
    rule = make_rule(flagged)
    assert code in codes(rule)
    assert not fires(rule), "flagged, yet the reference evaluator fires it"
    other = make_rule(near_miss)
    assert codes(other) == []
    assert fires(other), "the population cannot tell: the near miss should fire"


def test_an_impossible_audience_is_flagged() -> None:
    rule = make_rule({}, audience={"persona": {"in": ["data_engineer"], "ne": "data_engineer"}})
    assert codes(rule) == ["impossible-audience"]
    assert not fires(rule)
    other = make_rule({}, audience={"persona": {"in": ["data_engineer"], "ne": "sales"}})
    assert codes(other) == []
    assert fires(other)


def test_a_where_that_a_count_of_zero_satisfies_is_not_flagged() -> None:
    rule = make_rule(
        {"done": [{"event": "a", "where": {"p": {"gt": 2, "lt": 1}}, "count": {"eq": 0}}]}
    )
    assert codes(rule) == []
    assert fires(rule)


def test_a_key_on_the_last_anchor_is_not_flagged() -> None:
    """With `since.key`, each key's last event anchors: another key's may be later."""
    rule = make_rule(
        {
            "since": {"event": "a", "occurrence": "last", "key": "p"},
            "after": "2h",
            "done": [{"event": "a", "within": "1h"}],
        },
        once_per="occurrence",
    )
    assert codes(rule) == []
    assert fires(rule)


# -- Random rules: whatever is flagged never fires ----------------------------------------

NAMES = ("a", "b")
VALUES = (1, 2, "x")


def _condition() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(VALUES),
        st.builds(lambda v: {"ne": v}, st.sampled_from(VALUES)),
        st.builds(lambda lo, hi: {"gte": lo, "lt": hi}, st.integers(0, 3), st.integers(0, 3)),
        st.builds(lambda v: {"in": [v], "not_in": [v]}, st.sampled_from(VALUES)),
    )


@st.composite
def _items(draw: st.DrawFn, *, counts: bool) -> Any:
    item: dict[str, Any] = {"event": draw(st.sampled_from(NAMES))}
    if draw(st.booleans()):
        item["within"] = f"{draw(st.sampled_from([30, 60, 120, 180, 360]))}m"
    if draw(st.integers(0, 2)) == 0:
        item["where"] = {"p": draw(_condition())}
    if counts and draw(st.integers(0, 2)) == 0:
        ops = draw(st.sets(st.sampled_from(["eq", "gte", "gt", "lte", "lt"]), min_size=1))
        item["count"] = {op: draw(st.integers(0, 3)) for op in ops}
    return item


@st.composite
def _rules(draw: st.DrawFn) -> Rule:
    anchor = draw(st.sampled_from(["signed_up", "account_created", *NAMES]))
    when: dict[str, Any] = {
        "after": f"{draw(st.sampled_from([0, 30, 60, 120]))}m",
        "expires": f"{draw(st.sampled_from([0, 60, 120, 240]))}m",
    }
    once_per = "user"
    if anchor in NAMES:
        since: dict[str, Any] = {
            "event": anchor,
            "occurrence": draw(st.sampled_from(["first", "last"])),
        }
        if draw(st.booleans()):
            since["where"] = {"p": draw(_condition())}
        once_per = draw(st.sampled_from(["user", "occurrence"]))
        when["since"] = since
    else:
        when["since"] = anchor
    for field, counts in (
        ("done", True),
        ("not_done", False),
        ("account_done", True),
        ("account_not_done", False),
    ):
        if draw(st.booleans()):
            when[field] = draw(st.lists(_items(counts=counts), min_size=1, max_size=2))
    try:
        return make_rule(when, once_per=once_per)
    except ValidationError:
        return make_rule({})


@st.composite
def _worlds(draw: st.DrawFn) -> World:
    half_hours = st.integers(-2, 16).map(lambda n: n / 2)
    states = []
    next_id = 1
    for index in range(draw(st.integers(1, 4))):
        user_id = f"u{index}"
        events = []
        for _ in range(draw(st.integers(0, 6))):
            properties = {"p": draw(st.sampled_from(VALUES))} if draw(st.booleans()) else {}
            events.append(
                _event(
                    user_id, draw(st.sampled_from(NAMES)), draw(half_hours), next_id, **properties
                )
            )
            next_id += 1
        user = User(
            id=user_id,
            signed_up_at=BASE + draw(st.integers(-2, 4)) * H / 2,
            account_id=draw(st.sampled_from(["A", "B", None])),
        )
        states.append(UserState(user, tuple(events)))
    return World(tuple(states))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rule=_rules(), world=_worlds())
def test_a_rule_flagged_as_never_firing_never_fires(rule: Rule, world: World) -> None:
    if never_fires(rule):
        nows = [BASE + timedelta(minutes=30 * step) for step in range(-4, 50)]
        found = [f for now in nows for f in reference.firings(rule, world, now)]
        assert not found, (never_fires(rule), rule.model_dump(exclude_defaults=True))


# -- Conditions ---------------------------------------------------------------------------

POOL: list[object] = [None, [], {}, True, False, "x", "y", "~", "zz"]
POOL += [n / 4 for n in range(-20, 24)]  # every region the constants below cut


def _ops() -> st.SearchStrategy[Ops]:
    scalar = st.sampled_from([1, 2, 3, 1.5, "x", "y", True])
    number = st.sampled_from([1, 2, 3, 1.5])
    return st.builds(
        lambda d: Ops.model_validate(d),
        st.fixed_dictionaries(
            {},
            optional={
                "eq": scalar,
                "ne": scalar,
                "in": st.lists(scalar, max_size=3),
                "not_in": st.lists(scalar, max_size=3),
                "gt": number,
                "gte": number,
                "lt": number,
                "lte": number,
                "exists": st.booleans(),
            },
        ).filter(bool),
    )


@settings(max_examples=400, deadline=None)
@given(conditions=st.lists(_ops(), min_size=1, max_size=3))
def test_satisfiable_is_exact_on_the_reference_semantics(conditions: list[Ops]) -> None:
    by_pool = any(all(py_condition(ops, v) for ops in conditions) for v in POOL)
    assert satisfiable(conditions) == by_pool


def test_representatives_include_every_kind() -> None:
    values = representatives([Ops.model_validate({"gt": 1, "ne": "x"})])
    # absent, present but not a scalar, both booleans, a fresh text, the text named, and
    # one number on each side of the bound and on it
    assert values[:4] == [None, [], True, False]
    assert [v for v in values if kind_of(v) == "text"] == ["~", "x"]
    assert [v for v in values if kind_of(v) == "number"] == [0, 1, 2]


# -- Account rules on a database without accounts -----------------------------------------


def ruleset(tmp_path: Path, rules: list[dict[str, Any]], name: str = "r.yaml") -> RuleSet:
    (tmp_path / name).write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
    return load_rules(tmp_path, default_expires=timedelta(days=3))


def _rule(rule_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": rule_id, "send": {"email": "t"}, **fields}


def test_rules_reading_accounts_are_warned_about_when_the_database_has_none(
    tmp_path: Path,
) -> None:
    rules = ruleset(
        tmp_path,
        [
            _rule("plain"),
            _rule("traits", audience={"account": {"plan": "pro"}}),
            _rule("events", when={"account_done": ["a"], "account_not_done": ["b"]}),
            _rule("anchor", when={"since": "account_created"}),
            _rule("scope", once_per="account"),
            _rule("off", once_per="account", enabled=False),
        ],
    )
    warnings = lint(rules, has_accounts=False)
    assert [(f.rule_id, f.code, f.severity) for f in warnings] == [
        (rule_id, "no-accounts", "warning") for rule_id in ("traits", "events", "anchor", "scope")
    ]
    by_rule = {f.rule_id: f for f in warnings}
    assert "audience.account" in by_rule["traits"].message
    assert "account_done/account_not_done" in by_rule["events"].message
    assert "since: account_created" in by_rule["anchor"].message
    assert "once_per: account" in by_rule["scope"].message
    assert str(by_rule["scope"]).startswith(f"{tmp_path / 'r.yaml'}:")
    assert ": warning: rule 'scope': reads accounts" in str(by_rule["scope"])
    assert by_rule["scope"].line == rules.sources["scope"][1]
    assert lint(rules, has_accounts=True) == []
    assert lint(rules, has_accounts=None) == []


def test_never_firing_rules_are_errors_with_file_and_line(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        [_rule("fine"), _rule("broken", when={"done": ["a"], "not_done": ["a"]})],
    )
    [finding] = lint(rules)
    assert (finding.severity, finding.code) == ("error", "contradictory-items")
    assert str(finding) == (
        f"{tmp_path / 'r.yaml'}:{rules.sources['broken'][1]}: rule 'broken': never fires: "
        "done[0] (a) needs an event that not_done[0] (a) forbids: it sees every event the "
        "done item sees"
    )


# -- Email rules the daily cap can skip ---------------------------------------------------


def cap_ids(rules: RuleSet, cap: int, quiet: QuietHours | None = None) -> list[list[str]]:
    return [[r.id for r in group] for group in cap_groups(rules.enabled, cap, quiet)]


def test_overlapping_email_rules_over_the_cap_are_named_with_file_and_line(
    tmp_path: Path,
) -> None:
    rules = ruleset(
        tmp_path,
        [
            _rule("welcome", priority=10, when={"expires": "1d"}),
            _rule("nudge", when={"after": "12h", "expires": "1d"}),
        ],
    )
    [finding] = lint(rules, daily_cap=1)
    assert (finding.severity, finding.code) == ("warning", "daily-cap")
    assert finding.rule_id == "nudge"  # the lowest priority, skipped first
    assert finding.related == ("welcome",)
    assert f"welcome ({rules.where('welcome')})" in finding.message
    assert f"nudge ({rules.where('nudge')})" in finding.message
    assert "mail.daily_cap is 1" in finding.message
    assert lint(rules, daily_cap=2) == []  # two emails fit a cap of two
    assert lint(rules) == []  # no cap, no warning


def test_audiences_that_exclude_each_other_do_not_overlap(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        [
            _rule("a", audience={"persona": ["sales", "marketing"]}),
            _rule("b", audience={"persona": "data_engineer"}),
            _rule("c", audience={"traits": {"seats": {"gte": 10}}}),
            _rule("d", audience={"traits": {"seats": {"lt": 10}}}),
        ],
    )
    assert cap_ids(rules, 1) == [["a", "c"], ["a", "d"], ["b", "c"], ["b", "d"]]


def test_pairwise_overlap_is_not_enough_all_must_share_a_user(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        [
            _rule("ab", audience={"persona": ["a", "b"]}),
            _rule("bc", audience={"persona": ["b", "c"]}),
            _rule("ac", audience={"persona": ["a", "c"]}),
        ],
    )
    assert cap_ids(rules, 2) == []  # no persona is in all three
    assert audience_classes(list(rules.rules)) == [
        frozenset({0, 1}),
        frozenset({0, 2}),
        frozenset({1, 2}),
    ]


def test_windows_a_day_apart_do_not_overlap_unless_quiet_hours_delay_one(
    tmp_path: Path,
) -> None:
    rules = ruleset(
        tmp_path,
        [
            _rule("first", when={"expires": "1h"}),
            _rule("later", when={"after": "25h", "expires": "1h"}),
        ],
    )
    assert cap_ids(rules, 1) == []  # sent at 1h and 25h at the closest: a whole day apart
    quiet = QuietHours(start=time(21), end=time(8))
    assert cap_ids(rules, 1, quiet) == [["first", "later"]]  # the first may wait 11h (+ DST)
    exempt = ruleset(
        tmp_path,
        [
            _rule("first", when={"expires": "1h"}, quiet_hours=False),
            _rule("later", when={"after": "25h", "expires": "1h"}),
        ],
    )
    assert cap_ids(exempt, 1, quiet) == []  # only `later` waits, which moves it away


def test_rules_the_cap_cannot_skip_or_that_send_no_email(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        [
            _rule("exempt-1", frequency_cap=False),
            _rule("exempt-2", frequency_cap=False),
            _rule("guide", send={"guide": "tour"}),
            _rule("held-out", holdout="100%"),
            _rule("off", enabled=False),
        ],
    )
    assert cap_ids(rules, 1) == []
    one_capped = ruleset(tmp_path, [_rule("exempt", frequency_cap=False), _rule("capped")])
    assert cap_ids(one_capped, 1) == [["exempt", "capped"]]


def test_event_anchors_and_repeats_send_at_any_time(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        [
            _rule("welcome", when={"expires": "1h"}),
            _rule("month-two", when={"after": "30d", "expires": "1h"}),
            _rule("on-event", when={"since": "x"}),
        ],
    )
    assert cap_ids(rules, 1) == [["welcome", "on-event"], ["month-two", "on-event"]]
    assert cap_ids(rules, 2) == []
    repeats = ruleset(
        tmp_path,
        [
            _rule("welcome", when={"expires": "1h"}),
            _rule("each-time", when={"since": "x"}, once_per="occurrence"),
            _rule("hourly", when={"after": "2d", "expires": "1d"}, repeat_after="6h"),
        ],
    )
    # each-time sends any number a day: an email of it a day after signup has the welcome
    # within a day before it and `hourly` within a day after.
    assert cap_ids(repeats, 50) == [["welcome", "each-time", "hourly"]]


def test_the_default_pack_gets_its_cap_and_account_warnings() -> None:
    rules = load_rules(
        ROOT / "rules", default_expires=timedelta(days=3), activation_event="workflow_run"
    )
    quiet = QuietHours(start=time(21), end=time(8))
    findings = lint(rules, daily_cap=3, quiet_hours=quiet, has_accounts=False)
    assert [f.code for f in findings] == ["no-accounts", *["daily-cap"] * 4]
    groups = [{f.rule_id, *f.related} for f in findings[1:]]
    verify = {"verify-reminder-24h", "verify-reminder-connected-24h"}
    trial = "trial-account-no-workflow-day3"
    # Event anchors may come at any time after signup, and an account's first signup may
    # precede a member's: the retention rules can meet the onboarding ones.
    later = {trial, "verified-and-connected-next-step", "win-back-lapsed-data-engineer"}
    later.add("data-engineer-month-after-activation")
    assert groups == [
        {trial, "welcome-sales-marketing", *verify},
        {"welcome-invited-data-engineer", "invited-data-engineer-community-24h", *verify, *later},
        {
            "welcome-organic-data-engineer",
            "organic-data-engineer-no-connection-24h",
            *verify,
            *later,
        },
        {trial, "welcome-explorer", *verify},
    ]
    assert lint(rules, daily_cap=8, quiet_hours=quiet) == []


def test_finding_without_a_rule_prints_its_message() -> None:
    assert str(Finding("warning", "x", "hello")) == "warning: hello"


def test_a_repeating_rule_counts_as_many_emails_as_it_can_send_in_a_day(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path,
        [
            _rule("once", when={"after": "2d", "expires": "1d"}),
            _rule("hourly", when={"after": "2d", "expires": "1d"}, repeat_after="6h"),
        ],
    )
    # Firings at least 6h apart within a day-long window: 5 emails from `hourly`, 1 from `once`.
    assert cap_ids(rules, 5) == [["once", "hourly"]]
    assert cap_ids(rules, 6) == []
