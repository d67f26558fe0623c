"""What happens to one firing: holdout, skip reasons, channels, Message-IDs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.decide.firing import Candidate, anchor_name, decide
from engine.decide.keys import holdout_bucket, in_holdout, message_id
from engine.model import Status
from engine.rules.language import Rule

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
ANCHOR = NOW - timedelta(hours=30)
DEFAULT_TTL = timedelta(days=7)
DOMAIN = "airtouch.example"


def make_rule(
    *,
    rule_id: str = "welcome",
    send: dict[str, Any] | None = None,
    when: dict[str, Any] | None = None,
    holdout: Any = 0,
) -> Rule:
    return Rule.model_validate(
        {
            "id": rule_id,
            "when": {"after": "24h", "expires": "48h", **(when or {})},
            "send": send if send is not None else {"email": "welcome_explorer"},
            "holdout": holdout,
        }
    )


def make_candidate(
    *,
    user_id: Any = "u1",
    email: str | None = "ada@example.com",
    suppressed: bool = False,
    anchor_at: datetime = ANCHOR,
    anchor_event_id: int | None = None,
) -> Candidate:
    user: dict[str, Any] = {"id": user_id, "persona": "data_engineer"}
    if email is not None:
        user["email"] = email
    return Candidate(
        user=user,
        anchor_at=anchor_at,
        anchor_event_id=anchor_event_id,
        anchor_properties={},
        suppressed=suppressed,
    )


def run(rule: Rule, candidate: Candidate) -> Any:
    return decide(rule, candidate, NOW, guide_ttl=DEFAULT_TTL, domain=DOMAIN)


# ---- holdout ---------------------------------------------------------------------------


def test_holdout_bucket_is_deterministic() -> None:
    assert holdout_bucket("welcome", "u1") == holdout_bucket("welcome", "u1")
    assert holdout_bucket("welcome", "u1") != holdout_bucket("welcome", "u2")
    assert holdout_bucket("welcome", "u1") != holdout_bucket("nudge", "u1")


def test_holdout_bucket_separates_rule_and_user() -> None:
    # ("ab", "c") and ("a", "bc") must not collide by concatenation.
    assert holdout_bucket("ab", "c") != holdout_bucket("a", "bc")


def test_holdout_bucket_is_in_range() -> None:
    buckets = [holdout_bucket("welcome", f"user-{i}") for i in range(2000)]
    assert all(0 <= b < 100 for b in buckets)
    assert min(buckets) < 5
    assert max(buckets) > 95


def test_no_holdout_never_holds_out() -> None:
    rule = make_rule(holdout=0)
    assert not any(in_holdout(rule, f"user-{i}") for i in range(2000))


@pytest.mark.parametrize("holdout", [100, "100%", 100.0])
def test_full_holdout_always_holds_out(holdout: Any) -> None:
    rule = make_rule(holdout=holdout)
    assert all(in_holdout(rule, f"user-{i}") for i in range(2000))


def test_ten_percent_holdout_holds_out_about_ten_percent() -> None:
    # Fixed ids and a deterministic hash: this cannot flake.
    rule = make_rule(holdout="10%")
    held = sum(in_holdout(rule, f"user-{i}") for i in range(20000))
    assert 1800 <= held <= 2200


def test_in_holdout_agrees_with_bucket() -> None:
    rule = make_rule(holdout="37.5%")
    for i in range(500):
        user_id = f"user-{i}"
        assert in_holdout(rule, user_id) == (holdout_bucket(rule.id, user_id) < 37.5)


def test_holdouts_are_nested_as_the_percentage_grows() -> None:
    small, large = make_rule(holdout="5%"), make_rule(holdout="20%")
    for i in range(2000):
        if in_holdout(small, f"user-{i}"):
            assert in_holdout(large, f"user-{i}")


# ---- message_id ------------------------------------------------------------------------


def test_message_id_is_deterministic_and_has_the_domain() -> None:
    first = message_id("welcome", "u1", DOMAIN)
    assert first == message_id("welcome", "u1", DOMAIN)
    assert first.startswith("<")
    assert first.endswith(f"@{DOMAIN}>")
    assert first.count("@") == 1


def test_message_id_differs_across_rules_and_users() -> None:
    ids = {
        message_id(rule_id, user_id, DOMAIN)
        for rule_id in ("welcome", "nudge", "verify")
        for user_id in ("u1", "u2", "u3", "someone@example.com")
    }
    assert len(ids) == 12


def test_message_id_does_not_expose_the_user_id() -> None:
    assert "someone@example.com" not in message_id("welcome", "someone@example.com", DOMAIN)


# ---- decide ----------------------------------------------------------------------------


def test_email_is_pending_now() -> None:
    rule = make_rule(send={"email": "welcome_explorer"})
    planned = run(rule, make_candidate(anchor_event_id=None))
    assert planned.status is Status.PENDING
    assert planned.reason is None
    assert planned.rule_id == "welcome"
    assert planned.user_id == "u1"
    assert planned.send_at == NOW
    assert planned.email_template == "welcome_explorer"
    assert planned.email_to == "ada@example.com"
    assert planned.message_id == message_id("welcome", "u1", DOMAIN)
    assert planned.message_id.endswith(f"@{DOMAIN}>")
    assert planned.holdout is False
    assert planned.guide_id is None
    assert planned.guide_expires_at is None
    assert planned.sends_email
    assert not planned.sets_guide


def test_anchor_and_fire_at() -> None:
    anchor_at = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    rule = make_rule(when={"since": "connection_created", "after": "1d12h"})
    planned = run(rule, make_candidate(anchor_at=anchor_at, anchor_event_id=17))
    assert planned.anchor_at == anchor_at
    assert planned.anchor_event_id == 17
    assert planned.fire_at == anchor_at + timedelta(days=1, hours=12)


def test_fire_at_equals_anchor_when_after_is_zero() -> None:
    rule = make_rule(when={"after": "0"})
    assert run(rule, make_candidate()).fire_at == ANCHOR


def test_held_out_gets_neither_guide_nor_email() -> None:
    rule = make_rule(
        send={"email": "welcome_explorer", "guide": "tour", "guide_ttl": "2d"}, holdout="100%"
    )
    planned = run(rule, make_candidate())
    assert planned.status is Status.HELD_OUT
    assert planned.reason is None
    assert planned.holdout is True
    assert planned.guide_id is None
    assert planned.guide_expires_at is None
    assert planned.send_at is None
    assert planned.email_to is None
    assert planned.message_id is None
    assert not planned.sends_email
    assert not planned.sets_guide
    assert planned.fire_at == ANCHOR + timedelta(hours=24)


def test_held_out_guide_only_rule() -> None:
    rule = make_rule(send={"guide": "tour"}, holdout="100%")
    planned = run(rule, make_candidate())
    assert planned.status is Status.HELD_OUT
    assert planned.guide_id is None
    assert not planned.sets_guide


def test_held_out_takes_precedence_over_suppression() -> None:
    rule = make_rule(holdout="100%")
    planned = run(rule, make_candidate(suppressed=True, email=None))
    assert planned.status is Status.HELD_OUT
    assert planned.reason is None


def test_partial_holdout_follows_the_bucket() -> None:
    rule = make_rule(send={"email": "welcome_explorer", "guide": "tour"}, holdout="50%")
    users = [f"user-{i}" for i in range(40)]
    held = [u for u in users if holdout_bucket(rule.id, u) < 50]
    kept = [u for u in users if holdout_bucket(rule.id, u) >= 50]
    assert held
    assert kept
    for user_id in held:
        planned = run(rule, make_candidate(user_id=user_id))
        assert planned.status is Status.HELD_OUT
        assert planned.guide_id is None
    for user_id in kept:
        planned = run(rule, make_candidate(user_id=user_id))
        assert planned.status is Status.PENDING
        assert planned.guide_id == "tour"


def test_guide_only_is_sent_with_rule_ttl() -> None:
    rule = make_rule(send={"guide": "create_connection_tour", "guide_ttl": "2d"})
    planned = run(rule, make_candidate())
    assert planned.status is Status.SENT
    assert planned.reason is None
    assert planned.guide_id == "create_connection_tour"
    assert planned.guide_expires_at == NOW + timedelta(days=2)
    assert planned.email_template is None
    assert planned.email_to is None
    assert planned.message_id is None
    assert planned.send_at is None
    assert planned.sets_guide
    assert not planned.sends_email


def test_guide_only_uses_default_ttl() -> None:
    rule = make_rule(send={"guide": "create_connection_tour"})
    planned = run(rule, make_candidate())
    assert planned.status is Status.SENT
    assert planned.guide_expires_at == NOW + DEFAULT_TTL


def test_guide_ttl_counts_from_now_not_from_anchor() -> None:
    rule = make_rule(send={"guide": "tour", "guide_ttl": "30m"})
    planned = run(rule, make_candidate(anchor_at=NOW - timedelta(days=2)))
    assert planned.guide_expires_at == NOW + timedelta(minutes=30)


def test_guide_only_applies_to_suppressed_and_emailless_users() -> None:
    rule = make_rule(send={"guide": "tour"})
    planned = run(rule, make_candidate(suppressed=True, email=None))
    assert planned.status is Status.SENT
    assert planned.guide_id == "tour"


def test_email_and_guide_both_set() -> None:
    rule = make_rule(send={"email": "nudge_connection", "guide": "tour", "guide_ttl": "3d"})
    planned = run(rule, make_candidate())
    assert planned.status is Status.PENDING
    assert planned.guide_id == "tour"
    assert planned.guide_expires_at == NOW + timedelta(days=3)
    assert planned.sends_email
    assert planned.sets_guide


def test_suppressed_is_skipped_but_guide_still_applies() -> None:
    rule = make_rule(send={"email": "nudge_connection", "guide": "tour"})
    planned = run(rule, make_candidate(suppressed=True))
    assert planned.status is Status.SKIPPED
    assert planned.reason == "unsubscribed"
    assert planned.guide_id == "tour"
    assert planned.guide_expires_at == NOW + DEFAULT_TTL
    assert planned.send_at is None
    assert planned.email_to is None
    assert planned.message_id is None
    assert not planned.sends_email
    assert planned.sets_guide


def test_suppressed_email_only_is_skipped() -> None:
    planned = run(make_rule(), make_candidate(suppressed=True))
    assert planned.status is Status.SKIPPED
    assert planned.reason == "unsubscribed"
    assert planned.guide_id is None


@pytest.mark.parametrize("email", [None, ""])
def test_no_email_address_is_skipped(email: str | None) -> None:
    rule = make_rule(send={"email": "nudge_connection", "guide": "tour"})
    planned = run(rule, make_candidate(email=email))
    assert planned.status is Status.SKIPPED
    assert planned.reason == "no_email"
    assert planned.email_to is None
    assert planned.message_id is None
    assert planned.send_at is None
    assert planned.guide_id == "tour"


def test_numeric_user_id_is_a_string() -> None:
    planned = run(make_rule(), make_candidate(user_id=42))
    assert planned.user_id == "42"
    assert planned.message_id == message_id("welcome", "42", DOMAIN)


def test_decide_is_deterministic() -> None:
    rule = make_rule(send={"email": "nudge_connection", "guide": "tour"}, holdout="30%")
    candidate = make_candidate()
    assert run(rule, candidate) == run(rule, candidate)


def test_planned_keeps_the_candidate() -> None:
    candidate = make_candidate()
    assert run(make_rule(), candidate).candidate is candidate


def test_anchor_name() -> None:
    assert anchor_name(make_rule()) == "signed_up"
    assert anchor_name(make_rule(when={"since": "connection_created"})) == "connection_created"
