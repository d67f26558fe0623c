"""Variants of a rule's message: the hash that assigns them, its split, how decide() uses it,
and the loader's errors for a bad `variants`/`split` block."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.decide.firing import Candidate, decide
from engine.decide.keys import holdout_bucket, in_holdout
from engine.decide.variants import boundaries, choose, variant_bucket, variant_of
from engine.rules.language import Rule, Variants, parse_rule_file

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SUBJECTS = 10_000


def subjects(seed: int = 17) -> list[str]:
    rng = random.Random(seed)
    return [f"user-{rng.getrandbits(64):016x}" for _ in range(SUBJECTS)]


def within_binomial(count: int, n: int, p: float) -> bool:
    """Within five standard deviations of n*p: a fair hash fails this about once in 1.7 million
    seeds, a skewed split by 5% of n fails it for sure at n = 10k."""
    return abs(count - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def variant_rule(send: dict[str, Any] | None = None, holdout: Any = 0) -> Rule:
    return Rule.model_validate(
        {
            "id": "welcome",
            "when": {"expires": "2d"},
            "send": send
            or {"email": {"variants": {"a": "tpl_a", "b": "tpl_b"}, "split": {"a": 30, "b": 70}}},
            "holdout": holdout,
        }
    )


def candidate(user_id: str) -> Candidate:
    return Candidate(
        user={"id": user_id, "email": f"{user_id}@example.com"},
        anchor_at=NOW - timedelta(hours=1),
        anchor_event_id=None,
        anchor_properties={},
        suppressed=False,
    )


def test_the_variant_is_a_stable_function_of_rule_and_subject() -> None:
    rule = variant_rule()
    assert [variant_of(rule, s) for s in subjects()[:200]] == [
        variant_of(rule, s) for s in subjects()[:200]
    ]
    other = rule.model_copy(update={"id": "other"})
    assert [variant_of(rule, s) for s in subjects()[:200]] != [
        variant_of(other, s) for s in subjects()[:200]
    ]


def test_the_variant_hash_is_not_the_holdout_hash() -> None:
    assert all(variant_bucket("r", s) != holdout_bucket("r", s) for s in subjects()[:100])
    # Independent: among the held out (50%) variant a (50%) is still about half.
    rule = variant_rule({"email": {"variants": {"a": "x", "b": "y"}}}, holdout=50)
    held = [s for s in subjects() if in_holdout(rule, s)]
    in_a = sum(choose(rule.send.variants, variant_bucket(rule.id, s)) == "a" for s in held)  # type: ignore[arg-type]
    assert within_binomial(len(held), SUBJECTS, 0.5)
    assert within_binomial(in_a, len(held), 0.5)


@pytest.mark.parametrize(
    "split", [{"a": 30, "b": 70}, {"a": 50, "b": 50}, {"a": 10, "b": 20, "c": 70}]
)
def test_the_split_is_respected_over_ten_thousand_subjects(split: dict[str, int]) -> None:
    names = {name: f"tpl_{name}" for name in split}
    rule = variant_rule({"email": {"variants": names, "split": split}})
    assigned = [variant_of(rule, s) for s in subjects()]
    for name, share in split.items():
        assert within_binomial(assigned.count(name), SUBJECTS, share / 100), name


def test_without_split_the_variants_share_evenly() -> None:
    rule = variant_rule({"email": {"variants": {"a": "x", "b": "y", "c": "z"}}})
    assigned = [variant_of(rule, s) for s in subjects()]
    assert all(within_binomial(assigned.count(n), SUBJECTS, 1 / 3) for n in "abc")


def test_boundaries_skip_empty_variants_and_the_last_takes_the_rest() -> None:
    variants = Variants.model_validate(
        {"variants": {"a": "x", "b": "y", "c": "z"}, "split": {"a": 0, "b": 40, "c": 60}}
    )
    assert boundaries(variants) == (("b", 40.0), ("c", 100.0))
    assert choose(variants, 0.0) == "b"
    assert choose(variants, 39.999) == "b"
    assert choose(variants, 40.0) == "c"
    assert choose(variants, 99.99999) == "c"


def test_the_file_order_of_variants_does_not_move_anyone() -> None:
    one = variant_rule({"email": {"variants": {"a": "x", "b": "y"}, "split": {"a": 30, "b": 70}}})
    two = variant_rule({"email": {"variants": {"b": "y", "a": "x"}, "split": {"b": 70, "a": 30}}})
    assert [variant_of(one, s) for s in subjects()[:500]] == [
        variant_of(two, s) for s in subjects()[:500]
    ]


def test_decide_sends_the_variants_template_and_guide_and_records_the_variant() -> None:
    send = {
        "email": {"variants": {"a": "tpl_a", "b": "tpl_b"}},
        "guide": {"variants": {"a": "tour_a", "b": "tour_b"}},
    }
    rule = variant_rule(send)
    seen = set()
    for user_id in subjects()[:50]:
        planned = decide(rule, candidate(user_id), NOW, guide_ttl=timedelta(days=1), domain="x")
        assert planned.variant == variant_of(rule, user_id)
        assert planned.email_template == f"tpl_{planned.variant}"
        assert planned.guide_id == f"tour_{planned.variant}"
        seen.add(planned.variant)
    assert seen == {"a", "b"}


def test_a_held_out_row_has_no_variant() -> None:
    rule = variant_rule(holdout=100)
    planned = decide(rule, candidate("u1"), NOW, guide_ttl=timedelta(days=1), domain="x")
    assert planned.holdout
    assert planned.variant is None
    assert planned.email_template is None


def test_the_plain_form_has_no_variant() -> None:
    rule = variant_rule({"email": "welcome"})
    planned = decide(rule, candidate("u1"), NOW, guide_ttl=timedelta(days=1), domain="x")
    assert planned.variant is None
    assert planned.email_template == "welcome"
    assert rule.send.email_templates == ("welcome",)


RULE = """rules:
  - id: welcome
    send:
      email:
{email}
"""


def problems(email: str, templates: set[str] | None = None) -> list[str]:
    text = RULE.format(email="\n".join(f"        {line}" for line in email.splitlines()))
    _rules, found = parse_rule_file(text, "x.yaml", templates=templates)
    return [str(problem) for problem in found]


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        (
            "variants: {a: t1, b: t2}\nsplit: {a: 50, b: 40}",
            "x.yaml:4: rule 'welcome': send.email: split must sum to 100%, not 90%",
        ),
        (
            "variants: {a: t1, b: t2}\nsplit: {a: 50, c: 50}",
            "x.yaml:4: rule 'welcome': send.email: split must name exactly the variants: "
            "no share for b; c not among the variants",
        ),
        (
            "variants: {a: t1}",
            "x.yaml:4: rule 'welcome': send.email: variants needs at least two variants "
            "(for one message, name it directly)",
        ),
        (
            "variants: {A!: t1, b: t2}",
            "x.yaml:5: rule 'welcome': send.email.variants.A!: key 'A!' must match [a-z0-9_-]+",
        ),
        (
            "variants: {a: t1, b: t2}\nsplit: {a: 150, b: -50}",
            "x.yaml:6: rule 'welcome': send.email.split.a: percentage out of range: 150% "
            "(must be between 0% and 100%)",
        ),
        (
            "variant: {a: t1, b: t2}",
            "x.yaml:5: rule 'welcome': unknown key 'variant' in send.email",
        ),
    ],
)
def test_a_bad_variants_block_names_the_rule_and_the_field(email: str, expected: str) -> None:
    assert expected in problems(email)


def test_every_variants_template_must_exist() -> None:
    found = problems("variants: {a: t1, b: nope}", templates={"t1"})
    assert found == [
        "x.yaml:5: rule 'welcome': send.email.variants.b: template 'nope' does not exist "
        "(known: t1)"
    ]
    assert problems("variants: {a: t1, b: t2}\nsplit: {a: '25%', b: '75%'}", {"t1", "t2"}) == []


def test_email_and_guide_variants_must_agree() -> None:
    with pytest.raises(ValueError, match="same variants with the same split"):
        variant_rule(
            {
                "email": {"variants": {"a": "x", "b": "y"}},
                "guide": {"variants": {"a": "g", "c": "h"}},
            }
        )
    with pytest.raises(ValueError, match=r"send.guide.variants.b: 'Bad' must match"):
        variant_rule({"guide": {"variants": {"a": "g", "b": "Bad"}}})
