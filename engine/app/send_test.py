"""`lifecycle send-test`: one user's email for one rule, rendered and built as the dispatcher
builds it (`Composer.message`), sent through the configured transport to another address.

Nothing is written: the anchor comes from a dry run (which writes nothing), the Message-ID is
a test one (a receiver that de-duplicates by the real, ledger-derived id must not drop the
real email later), and the transport's receipt goes back to the caller, not to the ledger."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.decide.keys import user_hash
from engine.decide.variants import variant_of
from engine.delivery.mail import SendError
from engine.errors import LifecycleError, TemplateError
from engine.rules.language import Rule
from engine.runner import Runner

SUBJECT_PREFIX = "[test] "


@dataclass(frozen=True)
class TestSend:
    rule_id: str
    user_id: str
    to: str
    subject: str
    message_id: str
    receipt: str
    anchor: str  # where the anchor came from, for the operator: "plan" or "signup"


def send_test(runner: Runner, rule_id: str, user_id: str, to: str, now: datetime) -> TestSend:
    """Send the email; LifecycleError naming the rule, user or template when it cannot be.
    Over the runner alone, so that the CLI and the daemon's console (whose runner has the
    hot-reloaded rules) send it the same way."""
    rule = _email_rule(runner, rule_id)
    user = runner.store.reads.user(user_id)
    if user is None:
        raise LifecycleError(f"no user {user_id!r} in the database")
    user["traits"] = user["traits"] or {}
    # The template the user's variant gets: what a real send to them would render.
    template = rule.send.email_for(variant_of(rule, user_id))
    assert template is not None
    anchor, guide, source = _anchor(runner, rule, user, now)
    message_id = test_message_id(rule.id, user_id, runner.config.mail.domain)
    try:
        message = runner.composer.message(
            rule,
            template,
            user,
            anchor,
            guide,
            to=to,
            message_id=message_id,
            now=now,
            subject_prefix=SUBJECT_PREFIX,
            tracked=False,
        )
    except TemplateError as exc:
        hint = (
            " (the rule would not fire for this user now, so the anchor is the signup and "
            "has no event properties)"
            if source == "signup"
            else ""
        )
        raise LifecycleError(f"rule {rule.id!r}: render error: {exc}{hint}") from None
    try:
        receipt = runner.transport.send(message)
    except SendError as exc:
        raise LifecycleError(f"the transport did not take the test email: {exc.reply}") from None
    return TestSend(rule.id, user_id, to, str(message["Subject"]), message_id, receipt, source)


def test_message_id(rule_id: str, user_id: str, domain: str) -> str:
    """Unlike the ledger's, new at each test send: two tests of one email are two emails."""
    return f"<test.{rule_id}.{user_hash(user_id)}.{secrets.token_hex(6)}@{domain}>"


def _email_rule(runner: Runner, rule_id: str) -> Rule:
    rules = runner.rules
    try:
        rule = rules.get(rule_id)
    except KeyError:
        known = ", ".join(sorted(r.id for r in rules.rules))
        raise LifecycleError(f"unknown rule {rule_id!r} (known: {known})") from None
    if not rule.send.email:
        raise LifecycleError(f"rule {rule_id!r} sends no email (send.email is not set)")
    return rule


def _anchor(
    runner: Runner, rule: Rule, user: dict[str, Any], now: datetime
) -> tuple[tuple[datetime, dict[str, Any]], tuple[str | None, datetime | None], str]:
    """The anchor and guide a tick at `now` would give the row; when the rule would not fire
    for the user now (already sent, not yet due, expired), the signup as anchor, so that a
    template can still be checked against the user's own traits."""
    planned = runner.dry_run(now, rule_ids=[rule.id], user_ids=[user["id"]], render=False)
    ttl = rule.send.guide_ttl or runner.config.defaults.guide_ttl
    # A held-out row sets no guide; the test shows the email the others get.
    plain = rule.send.guide_for(variant_of(rule, str(user["id"])))
    guide = (plain, now + ttl if plain else None)
    if planned:
        row = planned[0].planned
        if row.guide_id:
            guide = (row.guide_id, row.guide_expires_at)
        return (row.anchor_at, dict(row.candidate.anchor_properties)), guide, "plan"
    return (user.get("signed_up_at") or now, {}), guide, "signup"
