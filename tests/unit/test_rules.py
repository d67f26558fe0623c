"""The rule language: what a valid rule means, and every error a rule author can see.

Every error must say `file:line` and, where a rule is known, its id. YAML texts are built with
`textwrap.dedent` and start on line 1, so the expected line numbers can be read off the text."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from engine.errors import Problem, ProblemsError, RuleError
from engine.rules.language import Ops, Rule, RuleSet, load_rules, parse_rule_file

BAD_DURATION = "use a number and a unit (s, m, h, d, w), e.g. '30m', '24h', '7d' or '1d12h'"
OPERATOR_LIST = "in, not_in, eq, ne, gt, gte, lt, lte, exists"
THREE_DAYS = timedelta(days=3)

FULL_RULE = """\
rules:
  - id: de-organic-no-connection-24h
    description: Organic data engineers with no connection or workflow a day after signup
    enabled: true
    audience:
      persona: data_engineer
      signup_source: organic
      traits:
        plan: {in: [free, trial]}
    when:
      since: signed_up
      after: 24h
      not_done: [connection_created, workflow_saved]
      done: [email_verified]
      expires: 48h
    send:
      email: nudge_connection
      guide: create_connection_tour
      guide_ttl: 7d
    goal: {event: connection_created, within: 7d}
    holdout: 10%
"""


def yaml_text(text: str) -> str:
    return textwrap.dedent(text)


def parse(text: str) -> tuple[list[tuple[Rule, int]], list[Problem]]:
    return parse_rule_file(yaml_text(text), "x.yaml")


def messages(text: str) -> list[str]:
    """The problems found in a single file named x.yaml, as a person reads them."""
    return [str(p) for p in parse(text)[1]]


def only_rule(text: str) -> Rule:
    rules, problems = parse(text)
    assert problems == []
    assert len(rules) == 1
    return rules[0][0]


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(yaml_text(text), encoding="utf-8")
    return path


def load_errors(directory: Path, templates: set[str] | None = None) -> list[str]:
    with pytest.raises(RuleError) as info:
        load_rules(directory, default_expires=THREE_DAYS, templates=templates)
    return [str(p) for p in info.value.problems]


# ---- valid rules ----------------------------------------------------------------------------


def test_full_design_rule_parses_with_its_values() -> None:
    rules, problems = parse(FULL_RULE)
    assert problems == []
    [(rule, line)] = rules
    assert line == 2
    assert rule.id == "de-organic-no-connection-24h"
    assert rule.description.startswith("Organic data engineers")
    assert rule.enabled is True
    assert rule.audience.persona == Ops(eq="data_engineer")
    assert rule.audience.signup_source == Ops(eq="organic")
    assert rule.audience.traits == {"plan": Ops.model_validate({"in": ["free", "trial"]})}
    assert rule.audience.traits["plan"].in_ == ("free", "trial")
    assert rule.when.since == "signed_up"
    assert rule.when.anchored_on_signup is True
    assert rule.when.after == timedelta(hours=24)
    assert [item.event for item in rule.when.not_done] == ["connection_created", "workflow_saved"]
    assert [item.event for item in rule.when.done] == ["email_verified"]
    assert rule.when.expires == timedelta(hours=48)
    assert rule.expires == timedelta(hours=48)
    assert rule.send.email == "nudge_connection"
    assert rule.send.guide == "create_connection_tour"
    assert rule.send.guide_ttl == timedelta(days=7)
    assert rule.guide_ttl == timedelta(days=7)
    assert rule.goal is not None
    assert rule.goal.event == "connection_created"
    assert rule.goal.within == timedelta(days=7)
    assert rule.holdout == 10.0


def test_minimal_rule_gets_the_defaults() -> None:
    rule = only_rule(
        """\
        rules:
          - id: welcome
            send: {email: welcome}
        """
    )
    assert rule.enabled is True
    assert rule.priority == 0
    assert rule.description == ""
    assert rule.when.since == "signed_up"
    assert rule.when.anchored_on_signup is True
    assert rule.when.after == timedelta(0)
    assert rule.when.not_done == ()
    assert rule.when.done == ()
    assert rule.when.where == {}
    assert rule.when.expires is None  # filled in by load_rules
    assert rule.audience.persona is None
    assert rule.audience.signup_source is None
    assert rule.audience.traits == {}
    assert rule.send.guide is None
    assert rule.guide_ttl is None
    assert rule.goal is None
    assert rule.holdout == 0.0


def test_scalar_means_eq_and_list_means_in() -> None:
    rule = only_rule(
        """\
        rules:
          - id: r
            audience:
              persona: [data_engineer, analyst]
              signup_source: organic
              traits:
                country: de
                tags: [a, b]
            send: {guide: tour}
        """
    )
    assert rule.audience.persona == Ops.model_validate({"in": ["data_engineer", "analyst"]})
    assert rule.audience.persona is not None
    assert rule.audience.persona.eq is None
    assert rule.audience.signup_source == Ops(eq="organic")
    assert rule.audience.traits["country"] == Ops(eq="de")
    assert rule.audience.traits["tags"].in_ == ("a", "b")


def test_every_trait_operator() -> None:
    rule = only_rule(
        """\
        rules:
          - id: r
            audience:
              traits:
                plan: {in: [free, trial]}
                region: {not_in: [eu, apac]}
                tier: {eq: gold}
                role: {ne: admin}
                seats: {gt: 1, gte: 2, lt: 10, lte: 9.5}
                company: {exists: true}
                phone: {exists: false}
                beta: {eq: true}
            send: {guide: tour}
        """
    )
    traits = rule.audience.traits
    assert traits["plan"].in_ == ("free", "trial")
    assert traits["region"].not_in == ("eu", "apac")
    assert traits["tier"].eq == "gold"
    assert traits["role"].ne == "admin"
    seats = traits["seats"]
    assert (seats.gt, seats.gte, seats.lt, seats.lte) == (1, 2, 10, 9.5)
    assert seats.eq is None
    assert traits["company"].exists is True
    assert traits["phone"].exists is False
    assert traits["beta"].eq is True


def test_event_anchor_with_where_filter() -> None:
    rule = only_rule(
        """\
        rules:
          - id: first-pipeline
            when:
              since: pipeline_run
              where: {direction: ingest, rows: {gte: 100}}
              after: 30m
            send: {email: pipeline_tips}
        """
    )
    assert rule.when.since == "pipeline_run"
    assert rule.when.anchored_on_signup is False
    assert rule.when.where == {"direction": Ops(eq="ingest"), "rows": Ops(gte=100)}
    assert rule.when.after == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("written", "expected"),
    [("10%", 10.0), ("0%", 0.0), ("100%", 100.0), ("12.5%", 12.5), ("25", 25.0), (5, 5.0)],
)
def test_holdout_percentages(written: object, expected: float) -> None:
    rule = Rule.model_validate({"id": "r", "send": {"email": "x"}, "holdout": written})
    assert rule.holdout == expected


def test_enabled_false_and_priority() -> None:
    rule = only_rule(
        """\
        rules:
          - id: r
            enabled: false
            priority: 5
            send: {email: x}
        """
    )
    assert rule.enabled is False
    assert rule.priority == 5


def test_rules_are_frozen() -> None:
    rule = only_rule(FULL_RULE)
    with pytest.raises(ValueError, match="frozen"):
        rule.id = "other"  # type: ignore[misc]


def test_each_rule_reports_its_own_line() -> None:
    rules, problems = parse(
        """\
        rules:
          - id: one
            send: {email: a}

          - id: two
            send:
              guide: tour
        """
    )
    assert problems == []
    assert [(r.id, line) for r, line in rules] == [("one", 2), ("two", 5)]


def test_empty_file_has_no_rules_and_no_problems() -> None:
    assert parse_rule_file("", "x.yaml") == ([], [])
    assert parse_rule_file("# only a comment\n", "x.yaml") == ([], [])


def test_expires_is_absent_until_loaded() -> None:
    rule = only_rule(
        """\
        rules:
          - id: r
            send: {email: x}
        """
    )
    with pytest.raises(AssertionError, match="load_rules"):
        _ = rule.expires


# ---- loading a directory --------------------------------------------------------------------


def test_default_expires_is_filled_when_absent_and_kept_when_present(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        """\
        rules:
          - id: no-expiry
            send: {email: welcome}
          - id: own-expiry
            when: {after: 1d, expires: 12h}
            send: {email: welcome}
        """,
    )
    ruleset = load_rules(tmp_path, default_expires=timedelta(days=5), templates={"welcome"})
    assert ruleset.get("no-expiry").expires == timedelta(days=5)
    assert ruleset.get("no-expiry").when.expires == timedelta(days=5)
    assert ruleset.get("own-expiry").expires == timedelta(hours=12)
    assert ruleset.get("own-expiry").when.after == timedelta(days=1)


def test_load_rules_reads_yaml_and_yml_in_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yml", "rules:\n  - id: from-b\n    send: {guide: tour}\n")
    write(tmp_path, "a.yaml", "rules:\n  - id: from-a\n    send: {guide: tour}\n")
    write(tmp_path, "notes.txt", "rules: [this is not read]\n")
    ruleset = load_rules(tmp_path, default_expires=THREE_DAYS)
    assert [r.id for r in ruleset.rules] == ["from-a", "from-b"]


def test_templates_none_skips_the_template_check(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules:\n  - id: r\n    send: {email: anything}\n")
    ruleset = load_rules(tmp_path, default_expires=THREE_DAYS, templates=None)
    assert ruleset.get("r").send.email == "anything"


def test_empty_directory_gives_an_empty_ruleset(tmp_path: Path) -> None:
    ruleset = load_rules(tmp_path, default_expires=THREE_DAYS, templates=set())
    assert ruleset.rules == ()
    assert ruleset.enabled == ()


def test_ruleset_enabled_get_and_where(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """\
        rules:
          - id: active
            send: {email: welcome}
          - id: disabled
            enabled: false
            send: {email: welcome}
          - id: also-on
            send:
              guide: tour
        """,
    )
    ruleset = load_rules(tmp_path, default_expires=THREE_DAYS, templates={"welcome"})
    assert [r.id for r in ruleset.rules] == ["active", "disabled", "also-on"]
    assert [r.id for r in ruleset.enabled] == ["active", "also-on"]
    assert ruleset.get("disabled").enabled is False
    with pytest.raises(KeyError):
        ruleset.get("missing")
    assert ruleset.where("active") == f"{path}:2"
    assert ruleset.where("disabled") == f"{path}:4"
    assert ruleset.where("also-on") == f"{path}:7"
    assert ruleset.where("missing") == "?:0"


def test_ruleset_where_without_sources() -> None:
    assert RuleSet(()).where("r") == "?:0"


def test_rules_directory_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(RuleError) as info:
        load_rules(missing, default_expires=THREE_DAYS)
    assert info.value.problems == [Problem("rules directory not found", str(missing))]
    assert str(info.value) == f"{missing}: rules directory not found"


def test_rule_error_is_a_problems_error() -> None:
    error = RuleError([Problem("a", "f.yaml", 3, "r"), Problem("b", "g.yaml")])
    assert isinstance(error, ProblemsError)
    assert str(error) == "f.yaml:3: rule 'r': a\ng.yaml: b"


# ---- YAML-level errors ----------------------------------------------------------------------


def test_malformed_yaml_flow_mapping_names_its_line() -> None:
    assert messages(
        """\
        rules:
          - id: a
            send: {email: x
          - id: b
        """
    ) == ["x.yaml:4: invalid YAML: expected ',' or '}', but got ':'"]


def test_malformed_yaml_bad_indentation_names_its_line() -> None:
    rules, problems = parse(
        """\
        rules:
          - id: a
            send:
              email: x
             guide: y
        """
    )
    assert rules == []
    assert [str(p) for p in problems] == [
        "x.yaml:5: invalid YAML: expected <block end>, but found '<block mapping start>'"
    ]


def test_duplicate_key_in_a_mapping() -> None:
    assert messages(
        """\
        rules:
          - id: a
            send:
              email: x
              email: y
        """
    ) == ["x.yaml:5: duplicate key 'email'"]


def test_duplicate_key_at_top_level() -> None:
    assert messages(
        """\
        rules:
          - id: a
            send: {email: x}
        rules:
          - id: b
            send: {email: x}
        """
    ) == ["x.yaml:4: duplicate key 'rules'"]


# ---- file structure -------------------------------------------------------------------------


def test_file_without_top_level_rules() -> None:
    assert messages(
        """\
        # a comment
        foo: 1
        """
    ) == ["x.yaml:1: a rule file needs a top-level 'rules:' list"]


def test_top_level_list_is_not_a_rule_file() -> None:
    assert messages("- id: a\n") == ["x.yaml:1: a rule file needs a top-level 'rules:' list"]


def test_rules_not_a_list() -> None:
    assert messages(
        """\
        # rules must be a list
        rules:
          id: a
        """
    ) == ["x.yaml:2: 'rules' must be a list"]


def test_unknown_top_level_key() -> None:
    rules, problems = parse(
        """\
        rules:
          - id: a
            send: {email: x}
        version: 1
        """
    )
    assert [r.id for r, _ in rules] == ["a"]
    assert [str(p) for p in problems] == [
        "x.yaml:4: unknown top-level key 'version' (only 'rules')"
    ]


# ---- rule-level errors ----------------------------------------------------------------------


def test_unknown_key_at_rule_level() -> None:
    assert messages(
        """\
        rules:
          - id: a
            sned: {email: x}
            send: {email: x}
        """
    ) == ["x.yaml:3: rule 'a': unknown key 'sned'"]


def test_unknown_keys_nested() -> None:
    assert messages(
        """\
        rules:
          - id: a
            audience:
              personas: x
            when:
              sinse: signed_up
            send:
              email: x
              sms: y
        """
    ) == [
        "x.yaml:4: rule 'a': unknown key 'personas' in audience",
        "x.yaml:6: rule 'a': unknown key 'sinse' in when",
        "x.yaml:9: rule 'a': unknown key 'sms' in send",
    ]


def test_unknown_trait_operator() -> None:
    assert messages(
        """\
        rules:
          - id: a
            audience:
              traits:
                plan: {like: free}
            send: {email: x}
        """
    ) == ["x.yaml:5: rule 'a': unknown key 'like' in audience.traits.plan"]


def test_unknown_goal_key() -> None:
    assert messages(
        """\
        rules:
          - id: a
            send: {email: x}
            goal:
              event: e
              whithin: 7d
        """
    ) == ["x.yaml:6: rule 'a': unknown key 'whithin' in goal"]


def test_missing_send() -> None:
    assert messages(
        """\
        rules:
          - id: a
            description: sends nothing
        """
    ) == ["x.yaml:2: rule 'a': missing required key 'send'"]


def test_missing_id() -> None:
    assert messages(
        """\
        rules:
          - send: {email: x}
        """
    ) == ["x.yaml:2: missing required key 'id'"]


@pytest.mark.parametrize("send", ["{}", "{email: '', guide: null}"])
def test_send_with_neither_email_nor_guide(send: str) -> None:
    assert messages(
        f"""\
        rules:
          - id: a
            send: {send}
        """
    ) == [
        "x.yaml:3: rule 'a': send: a rule must send something: "
        "set send.email, send.guide and/or send.webhook"
    ]


def test_guide_ttl_without_guide() -> None:
    assert messages(
        """\
        rules:
          - id: a
            send:
              email: x
              guide_ttl: 7d
        """
    ) == ["x.yaml:3: rule 'a': send: guide_ttl and guide_params need send.guide"]


def test_guide_id_must_be_lowercase() -> None:
    assert messages(
        """\
        rules:
          - id: a
            send:
              guide: Big Tour
        """
    ) == ["x.yaml:4: rule 'a': send.guide: 'Big Tour' must match [a-z0-9_-]+"]


def test_bad_durations_in_after_expires_and_goal_within() -> None:
    assert messages(
        """\
        rules:
          - id: a
            when:
              after: 24
              expires: 5x
            send: {email: x}
            goal:
              event: e
              within: soon
        """
    ) == [
        "x.yaml:4: rule 'a': when.after: duration must be a string such as '30m', '24h' or "
        "'7d', got 24",
        f"x.yaml:5: rule 'a': when.expires: bad duration '5x': {BAD_DURATION}",
        f"x.yaml:9: rule 'a': goal.within: bad duration 'soon': {BAD_DURATION}",
    ]


def test_bad_guide_ttl_duration() -> None:
    assert messages(
        """\
        rules:
          - id: a
            send:
              guide: tour
              guide_ttl: a week
        """
    ) == [f"x.yaml:5: rule 'a': send.guide_ttl: bad duration 'a week': {BAD_DURATION}"]


def test_holdout_out_of_range_and_not_a_percentage() -> None:
    problems = messages(
        """\
        rules:
          - id: a
            send: {email: x}
            holdout: 120%
          - id: b
            send: {email: x}
            holdout: -1
          - id: c
            send: {email: x}
            holdout: abc
        """
    )
    assert len(problems) == 3
    assert problems[0].startswith("x.yaml:4: rule 'a': holdout: percentage out of range: 120")
    assert problems[0].endswith("(must be between 0% and 100%)")
    assert problems[1].startswith("x.yaml:7: rule 'b': holdout: percentage out of range: -1")
    assert problems[1].endswith("(must be between 0% and 100%)")
    assert problems[2] == "x.yaml:10: rule 'c': holdout: not a percentage: 'abc' (write e.g. '10%')"


def test_holdout_must_not_be_a_bool() -> None:
    with pytest.raises(ValueError, match=r"not a percentage: True"):
        Rule.model_validate({"id": "r", "send": {"email": "x"}, "holdout": True})


@pytest.mark.parametrize("rule_id", ["Bad-Id", "has space", "dots.not.allowed", "ümlaut"])
def test_rule_id_pattern(rule_id: str) -> None:
    assert messages(
        f"""\
        rules:
          - id: {rule_id}
            send: {{email: x}}
        """
    ) == [f"x.yaml:2: rule {rule_id!r}: id: {rule_id!r} must match [a-z0-9_-]+"]


def test_rule_id_must_be_a_string() -> None:
    assert messages(
        """\
        rules:
          - id: 42
            send: {email: x}
        """
    ) == ["x.yaml:2: id: expected a string, got 42"]


def test_where_with_since_signed_up() -> None:
    assert messages(
        """\
        rules:
          - id: a
            when:
              since: signed_up
              where: {direction: ingest}
            send: {email: x}
        """
    ) == [
        "x.yaml:3: rule 'a': when: where filters the anchor event's properties; "
        "it needs since: <event>"
    ]


def test_where_without_since_defaults_to_signed_up_and_is_rejected() -> None:
    problems = messages(
        """\
        rules:
          - id: a
            when:
              where: {direction: ingest}
            send: {email: x}
        """
    )
    assert problems == [
        "x.yaml:3: rule 'a': when: where filters the anchor event's properties; "
        "it needs since: <event>"
    ]


def test_not_done_containing_the_anchor_event() -> None:
    assert messages(
        """\
        rules:
          - id: a
            when:
              since: connection_created
              not_done: [workflow_saved, connection_created]
            send: {email: x}
        """
    ) == [
        "x.yaml:3: rule 'a': when: not_done contains the anchor event 'connection_created', "
        "so the rule could never fire"
    ]


def test_empty_since() -> None:
    assert messages(
        """\
        rules:
          - id: a
            when:
              since: ''
            send: {email: x}
        """
    ) == ["x.yaml:3: rule 'a': when: since must be 'signed_up', 'account_created' or an event name"]


def test_condition_without_operator() -> None:
    assert messages(
        """\
        rules:
          - id: a
            audience:
              traits:
                plan: {}
            send: {email: x}
        """
    ) == [
        f"x.yaml:5: rule 'a': audience.traits.plan: a condition needs an operator: "
        f"one of {OPERATOR_LIST}"
    ]


def test_gt_with_a_string_value() -> None:
    problems = messages(
        """\
        rules:
          - id: a
            audience:
              traits:
                seats: {gt: many}
            send: {email: x}
        """
    )
    assert len(problems) == 1
    assert problems[0].startswith("x.yaml:5: rule 'a': audience.traits.seats.gt: expected a ")
    assert problems[0].endswith("got 'many'")


def test_exists_must_be_a_bool() -> None:
    assert messages(
        """\
        rules:
          - id: a
            audience:
              traits:
                company: {exists: maybe}
            send: {email: x}
        """
    ) == ["x.yaml:5: rule 'a': audience.traits.company.exists: expected a boolean, got 'maybe'"]


def test_trait_key_must_need_no_quoting() -> None:
    problems = messages(
        """\
        rules:
          - id: a
            audience:
              traits:
                "has space": x
            send: {email: x}
        """
    )
    assert len(problems) == 1
    assert problems[0].startswith("x.yaml:5: rule 'a': audience.traits.has space")


def test_enabled_must_be_a_bool() -> None:
    assert messages(
        """\
        rules:
          - id: a
            enabled: "yes"
            send: {email: x}
        """
    ) == ["x.yaml:3: rule 'a': enabled: expected a boolean, got 'yes'"]


def test_all_problems_in_a_file_are_reported_together() -> None:
    rules, problems = parse(
        """\
        rules:
          - id: Bad
            send: {email: x}
          - id: good
            send: {email: x}
          - id: no-send
          - id: bad-after
            when: {after: soon}
            send: {email: x}
            holdout: 200%
        extra: 1
        """
    )
    assert [r.id for r, _ in rules] == ["good"]
    assert [(p.line, p.rule_id) for p in problems] == [
        (11, None),
        (2, "Bad"),
        (6, "no-send"),
        (8, "bad-after"),
        (10, "bad-after"),
    ]
    assert all(p.file == "x.yaml" for p in problems)


def test_load_rules_reports_every_problem_in_one_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "broken.yaml",
        """\
        rules:
          - id: a
            sned: {}
            send: {email: welcome}
          - id: b
            send: {}
          - id: c
            when: {after: 5x}
            send: {email: welcome}
        """,
    )
    assert load_errors(tmp_path, {"welcome"}) == [
        f"{path}:3: rule 'a': unknown key 'sned'",
        f"{path}:6: rule 'b': send: a rule must send something: "
        "set send.email, send.guide and/or send.webhook",
        f"{path}:8: rule 'c': when.after: bad duration '5x': {BAD_DURATION}",
    ]


# ---- cross-file errors ----------------------------------------------------------------------


def test_duplicate_rule_id_across_files_names_both_places(tmp_path: Path) -> None:
    first = write(
        tmp_path,
        "a.yaml",
        """\
        rules:
          - id: other
            send: {guide: tour}
          - id: welcome
            send: {guide: tour}
        """,
    )
    second = write(
        tmp_path,
        "b.yaml",
        """\
        # the same id again
        rules:
          - id: welcome
            send: {guide: tour}
        """,
    )
    assert load_errors(tmp_path) == [
        f"{second}:3: rule 'welcome': duplicate rule id (first defined at {first}:4)"
    ]


def test_duplicate_rule_id_in_one_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """\
        rules:
          - id: welcome
            send: {guide: tour}
          - id: welcome
            send: {guide: tour}
        """,
    )
    assert load_errors(tmp_path) == [
        f"{path}:4: rule 'welcome': duplicate rule id (first defined at {path}:2)"
    ]


def test_template_that_does_not_exist(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """\
        rules:
          - id: fine
            send: {email: welcome}
          - id: typo
            description: a typo in the template name
            send:
              guide: tour
              email: welcom
        """,
    )
    assert load_errors(tmp_path, {"welcome", "nudge_connection"}) == [
        f"{path}:8: rule 'typo': send.email: template 'welcom' does not exist "
        "(known: nudge_connection, welcome)"
    ]


def test_template_check_with_no_templates_at_all(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """\
        rules:
          - id: r
            send:
              email: welcome
        """,
    )
    assert load_errors(tmp_path, set()) == [
        f"{path}:4: rule 'r': send.email: template 'welcome' does not exist (known: none)"
    ]


def test_guide_only_rule_needs_no_template(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "rules:\n  - id: r\n    send: {guide: tour}\n")
    ruleset = load_rules(tmp_path, default_expires=THREE_DAYS, templates=set())
    assert ruleset.get("r").send.guide == "tour"


def test_valid_file_next_to_a_broken_one_does_not_hide_its_errors(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a-good.yaml",
        """\
        rules:
          - id: good
            send: {email: welcome}
        """,
    )
    broken = write(
        tmp_path,
        "b-broken.yaml",
        """\
        rules:
          - id: broken
            when:
              after: 24
            send: {email: welcome}
        """,
    )
    write(
        tmp_path,
        "c-good.yaml",
        """\
        rules:
          - id: also-good
            send: {guide: tour}
        """,
    )
    assert load_errors(tmp_path, {"welcome"}) == [
        f"{broken}:4: rule 'broken': when.after: duration must be a string such as '30m', "
        "'24h' or '7d', got 24"
    ]


def test_errors_from_several_files_are_reported_together(tmp_path: Path) -> None:
    bad_yaml = write(tmp_path, "a.yaml", "rules:\n  - id: a\n    send: {email: x\n  - id: b\n")
    no_rules = write(tmp_path, "b.yaml", "foo: 1\n")
    bad_rule = write(tmp_path, "c.yaml", "rules:\n  - id: c\n    send: {}\n")
    assert load_errors(tmp_path) == [
        f"{bad_yaml}:4: invalid YAML: expected ',' or '}}', but got ':'",
        f"{no_rules}:1: a rule file needs a top-level 'rules:' list",
        f"{bad_rule}:3: rule 'c': send: a rule must send something: "
        "set send.email, send.guide and/or send.webhook",
    ]


def test_template_errors_are_reported_with_rule_errors(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "a.yaml",
        """\
        rules:
          - id: bad
            send: {}
          - id: missing-template
            send:
              email: nope
        """,
    )
    assert load_errors(tmp_path, {"welcome"}) == [
        f"{path}:3: rule 'bad': send: a rule must send something: "
        "set send.email, send.guide and/or send.webhook",
        f"{path}:6: rule 'missing-template': send.email: template 'nope' does not exist "
        "(known: welcome)",
    ]


def test_missing_template_points_at_the_send_email_line_not_a_trait_named_email() -> None:
    text = textwrap.dedent(
        """\
        rules:
          - id: a
            audience:
              traits:
                email: {exists: true}
            send:
              email: nope
          - id: inline
            send: {email: nope2}
        """
    )
    _, problems = parse_rule_file(text, "x.yaml", templates={"t"})
    assert [(p.line, p.rule_id) for p in problems] == [(7, "a"), (9, "inline")]


def test_a_rule_that_is_not_a_mapping_is_named_by_line() -> None:
    text = "rules:\n  - just a string\n"
    _, problems = parse_rule_file(text, "x.yaml")
    assert [str(p) for p in problems] == ["x.yaml:2: each rule must be a mapping with an id"]


def test_ordering_operators_say_they_want_a_number() -> None:
    text = "rules:\n  - id: a\n    audience: {traits: {n: {gt: many}}}\n    send: {guide: g}\n"
    _, problems = parse_rule_file(text, "x.yaml")
    assert [str(p) for p in problems] == [
        "x.yaml:3: rule 'a': audience.traits.n.gt: expected a number, got 'many'"
    ]
