"""`changes()`: what a hot reload reports, rule by rule, from two rule sets."""

from __future__ import annotations

from typing import Any

from engine.daemon.reload import Changes, changes
from engine.rules.language import Rule, RuleSet


def rule(rule_id: str, **fields: Any) -> Rule:
    return Rule.model_validate({"id": rule_id, "send": {"email": "hello"}, **fields})


def test_nothing_changed() -> None:
    old = RuleSet((rule("a"), rule("b")))
    diff = changes(old, RuleSet((rule("b"), rule("a"))))
    assert diff == Changes()
    assert diff.empty
    assert str(diff) == "no rule changed"


def test_added_removed_and_modified_are_sorted_ids() -> None:
    old = RuleSet((rule("keep"), rule("edit"), rule("gone-b"), rule("gone-a")))
    new = RuleSet((rule("keep"), rule("edit", priority=5), rule("new-b"), rule("new-a")))
    diff = changes(old, new)
    assert diff == Changes(
        added=("new-a", "new-b"), removed=("gone-a", "gone-b"), modified=("edit",)
    )
    assert not diff.empty
    assert str(diff) == "added new-a, new-b; removed gone-a, gone-b; modified edit"


def test_disabling_a_rule_is_a_modification() -> None:
    diff = changes(RuleSet((rule("a"),)), RuleSet((rule("a", enabled=False),)))
    assert diff == Changes(modified=("a",))


def test_a_change_deep_in_a_rule_counts() -> None:
    old = RuleSet((rule("a", audience={"traits": {"plan": {"in": ["free"]}}}),))
    new = RuleSet((rule("a", audience={"traits": {"plan": {"in": ["free", "trial"]}}}),))
    assert changes(old, new).modified == ("a",)
    # Where a rule is written is not part of the rule.
    moved = RuleSet(old.rules, sources={"a": ("other.yaml", 9)})
    assert changes(old, moved).empty
