"""Rule language v2: what each new key means once parsed, and the errors bad v2 input gets,
each named with file:line and the rule id. v1 files keep parsing as before (test_rules.py)."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from engine.rules.language import Rule, parse_rule_file


def parse(text: str, activation_event: str | None = None) -> tuple[list[Rule], list[str]]:
    rules, problems = parse_rule_file(
        textwrap.dedent(text), "x.yaml", activation_event=activation_event
    )
    return [rule for rule, _ in rules], [str(p) for p in problems]


def only(text: str, activation_event: str | None = None) -> Rule:
    rules, problems = parse(text, activation_event)
    assert problems == []
    (rule,) = rules
    return rule


def test_a_full_v2_rule_parses_to_what_it_says() -> None:
    rule = only(
        """\
        rules:
          - id: win-back
            audience:
              account: {plan: {in: [trial]}, seats: {gte: 5}}
            when:
              since: {event: workflow_run, occurrence: last}
              after: 14d
              not_done: [workflow_saved, {event: login, within: 7d}]
              done: [{event: workflow_run, count: {gte: 3}}]
              account_not_done: [invite_sent]
              account_done: [{event: connection_created, where: {direction: egress}}]
            once_per: user
            repeat_after: 30d
            send: {email: x}
        """
    )
    when = rule.when
    assert (when.anchor_event, when.occurrence, when.occurrence_key) == (
        "workflow_run",
        "last",
        None,
    )
    assert [i.plain for i in when.not_done] == [True, False]
    assert when.not_done[1].within == timedelta(days=7)
    count = when.done[0].count
    assert count is not None
    assert count.holds(3)
    assert not count.holds(2)
    assert set(rule.audience.account) == {"plan", "seats"}
    assert rule.repeat_after == timedelta(days=30)
    assert rule.uses_account


def test_since_activated_is_the_configured_activation_event() -> None:
    text = """\
        rules:
          - id: a
            when: {since: activated, after: 30d}
            send: {email: x}
        """
    rule = only(text, activation_event="pipeline_live")
    assert (rule.when.anchor_event, rule.when.occurrence) == ("pipeline_live", "first")
    _, problems = parse(text)
    assert problems == [
        "x.yaml:3: rule 'a': since: activated needs the activation event (reports.activation_event)"
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "when: {since: {event: run, occurrence: latest}}",
            "x.yaml:3: rule 'a': when.since.occurrence: Input should be 'first' or 'last'",
        ),
        (
            "when: {done: [{event: run, count: {}}]}",
            "x.yaml:3: rule 'a': when.done.0.count: count needs an operator: "
            "one of eq, gte, gt, lte, lt",
        ),
        (
            "when: {done: [{event: run, count: {gte: -1}}]}",
            "x.yaml:3: rule 'a': when.done.0.count.gte: Input should be greater than or equal to 0",
        ),
        (
            "when: {not_done: [{event: run, count: {lt: 2}}]}",
            "x.yaml:3: rule 'a': when: count belongs in done or account_done, not not_done "
            "(for 'fewer than n', write done: [{event: x, count: {lt: n}}])",
        ),
        (
            "when: {since: run}\n    once_per: occurrence\n    repeat_after: 30d",
            "x.yaml:2: rule 'a': repeat_after does not apply to once_per: occurrence "
            "(each occurrence fires once; drop repeat_after or use once_per: user)",
        ),
        (
            "once_per: occurrence",
            "x.yaml:2: rule 'a': once_per: occurrence needs an event anchor (since: <event>); "
            "'signed_up' happens once",
        ),
        (
            "when: {since: {event: run, key: workflow_id}}",
            "x.yaml:2: rule 'a': since.key names occurrences: it needs once_per: occurrence",
        ),
        (
            "when: {since: {event: run}, where: {a: 1}}",
            "x.yaml:3: rule 'a': when: give the anchor's where in since.where, not beside it",
        ),
        (
            "when: {since: account_created, where: {a: 1}}",
            "x.yaml:3: rule 'a': when: where filters the anchor event's properties; "
            "it needs since: <event>",
        ),
        (
            "once_per: everyone",
            "x.yaml:3: rule 'a': once_per: Input should be 'user', 'occurrence' or 'account'",
        ),
        (
            "when: {not_done: [{event: login, within: 0}]}",
            "x.yaml:3: rule 'a': when.not_done.0: within must be positive",
        ),
        (
            "when: {since: {event: signed_up}}",
            "x.yaml:3: rule 'a': when.since: since.event names an event; "
            "write `since: signed_up` instead",
        ),
        (
            "audience: {account: {plan: {}}}",
            "x.yaml:3: rule 'a': audience.account.plan: a condition needs an operator: "
            "one of in, not_in, eq, ne, gt, gte, lt, lte, exists",
        ),
    ],
)
def test_bad_v2_input_is_named_with_file_line_and_rule(body: str, message: str) -> None:
    text = f"rules:\n  - id: a\n    {body}\n    send: {{email: x}}\n"
    rules, problems = parse(text)
    assert rules == []
    assert problems == [message]
