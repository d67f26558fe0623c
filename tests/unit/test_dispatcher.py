"""The dispatcher over the in-memory outbox (`MemoryOutbox`, held to the real outbox's
contract in tests/integration/test_outbox_contract.py) and the recording transport: the
delivery policy without a database."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from engine.delivery.compose import Composer
from engine.delivery.dispatcher import Dispatcher
from engine.delivery.mail import PermanentSendError, TransientSendError
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.model import SkipReason, Status
from engine.rules.language import load_rules
from engine.store.testing import MemoryDirectory, MemoryOutbox, new_due
from tests.project_files import NOTE, write_project

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
CREATED = NOW - timedelta(minutes=5)
RULES = """
rules:
  - id: welcome
    send: {email: note}
  - id: tips
    send: {email: note}
  - id: team
    send: {email: team}
"""
TEAM = (
    "Join {{ account.traits.plan }}",
    "{{ account.member_count }} members, {{ inviter.first_name }}. {{ unsubscribe_url }}",
    "<p>{{ inviter.email }}</p><a href='{{ unsubscribe_url }}'>x</a>",
)


@dataclass
class Suppressions:
    calls: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, now: datetime, **fields: Any) -> None:
        self.calls.append((now, fields))


@dataclass
class Kit:
    outbox: MemoryOutbox
    transport: RecordingTransport
    suppressed: Suppressions
    directory: MemoryDirectory
    dispatcher: Dispatcher


@pytest.fixture
def kit(tmp_path: Path) -> Kit:
    write_project(tmp_path, RULES, {"note": NOTE, "team": TEAM})
    config = Config.model_validate({"base_dir": tmp_path, "mail": {"from": "T <t@x.io>"}})
    renderer = Renderer(tmp_path / "templates")
    rules = load_rules(
        tmp_path / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    outbox, transport, suppressed = MemoryOutbox(), RecordingTransport(), Suppressions()
    directory = MemoryDirectory()
    dispatcher = Dispatcher(
        outbox=outbox,
        suppress=suppressed,
        rules=rules,
        composer=Composer(renderer, config, directory),
        transport=transport,
        retry=config.mail.retry,
        random=lambda: 0.5,
    )
    return Kit(outbox, transport, suppressed, directory, dispatcher)


def test_a_sent_email_is_marked_sent_with_the_receipt(kit: Kit) -> None:
    delivery = kit.outbox.add(new_due("welcome", "u1", CREATED))
    assert kit.dispatcher.dispatch(NOW) == {"sent": 1}
    [message] = kit.transport.messages
    assert (message["To"], message["Subject"]) == ("u1@example.com", "A note for u1")
    row = kit.outbox.row(delivery)
    assert (row.status, row.reply, row.sent_at, row.attempts) == (
        Status.SENT,
        "recorded #1",
        NOW,
        1,
    )
    assert kit.dispatcher.dispatch(NOW + timedelta(hours=1)) == {}  # sent once


def test_an_email_renders_the_account_and_the_inviter_from_the_directory(kit: Kit) -> None:
    kit.directory.add_account("acme", {"plan": "team"})
    kit.directory.add_user("u0", email="grace@example.com", traits={"name": "Grace Hopper"})
    for user_id in ("u1", "u2"):
        kit.directory.add_user(user_id, account_id="acme")
    due = new_due("team", "u1", CREATED, email_template="team")
    user = {**due.user, "account_id": "acme", "invited_by": "u0"}
    kit.outbox.add(dataclasses.replace(due, user=user))
    plain = kit.outbox.add(new_due("welcome", "u3", CREATED))  # no account, no inviter
    assert kit.dispatcher.dispatch(NOW) == {"sent": 2}
    team = next(m for m in kit.transport.messages if m["To"] == "u1@example.com")
    assert team["Subject"] == "Join team"
    assert "2 members, Grace." in team.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert kit.directory.calls == 1  # one lookup for the email that has relations, none else
    assert kit.outbox.row(plain).status is Status.SENT


def test_a_template_reading_a_trait_the_account_lacks_fails_that_delivery(kit: Kit) -> None:
    kit.directory.add_user("u1", account_id="acme")
    due = new_due("team", "u1", CREATED, email_template="team")
    delivery = kit.outbox.add(
        dataclasses.replace(due, user={**due.user, "account_id": "acme", "invited_by": "gone"})
    )
    assert kit.dispatcher.dispatch(NOW) == {"failed": 1}
    row = kit.outbox.row(delivery)
    assert row.reason is not None
    assert row.reason.startswith("render error: team/subject.txt:1")
    assert "plan" in row.reason  # the account has no group call yet: no `plan` trait


def test_a_transient_error_is_retried_with_backoff(kit: Kit) -> None:
    delivery = kit.outbox.add(new_due("welcome", "u1", CREATED))
    kit.transport.fail_with = TransientSendError("451 4.3.0 try later")
    assert kit.dispatcher.dispatch(NOW) == {"retrying": 1}
    row = kit.outbox.row(delivery)
    # first delay 1 min, jitter 0.5 -> 75% of it
    assert (row.status, row.reply, row.reason, row.send_at, row.attempts) == (
        Status.RETRYING,
        "451 4.3.0 try later",
        "temporary failure: 451 4.3.0 try later",
        NOW + timedelta(seconds=45),
        1,
    )
    assert kit.dispatcher.dispatch(NOW + timedelta(seconds=44)) == {}  # not due yet
    second = NOW + timedelta(seconds=45)
    assert kit.dispatcher.dispatch(second) == {"retrying": 1}
    assert kit.outbox.row(delivery).send_at == second + timedelta(seconds=90)  # doubled
    kit.transport.fail_with = None
    assert kit.dispatcher.dispatch(second + timedelta(seconds=90)) == {"sent": 1}
    assert (kit.outbox.row(delivery).status, kit.outbox.row(delivery).attempts) == (
        Status.SENT,
        3,
    )


def test_a_transient_error_past_the_give_up_age_fails(kit: Kit) -> None:
    delivery = kit.outbox.add(new_due("welcome", "u1", NOW - timedelta(hours=24)))
    kit.transport.fail_with = TransientSendError("451 still down")
    assert kit.dispatcher.dispatch(NOW) == {"failed": 1}
    row = kit.outbox.row(delivery)
    assert (row.status, row.reason) == (Status.FAILED, "gave up after 1 attempts: 451 still down")


def test_a_permanent_bounce_suppresses_the_address_and_fails(kit: Kit) -> None:
    delivery = kit.outbox.add(new_due("welcome", "u1", CREATED))
    kit.transport.fail_with = PermanentSendError("550 5.1.1 no such user", bounce=True)
    assert kit.dispatcher.dispatch(NOW) == {"failed": 1}
    assert kit.suppressed.calls == [
        (NOW, {"email": "u1@example.com", "reason": SkipReason.BOUNCED.value})
    ]
    row = kit.outbox.row(delivery)
    assert (row.status, row.reason, row.reply) == (
        Status.FAILED,
        "rejected: 550 5.1.1 no such user",
        "550 5.1.1 no such user",
    )
    assert kit.dispatcher.dispatch(NOW + timedelta(days=1)) == {}  # never retried


def test_a_permanent_rejection_that_is_no_bounce_suppresses_nothing(kit: Kit) -> None:
    kit.outbox.add(new_due("welcome", "u1", CREATED))
    kit.transport.fail_with = PermanentSendError("554 5.7.1 policy")
    assert kit.dispatcher.dispatch(NOW) == {"failed": 1}
    assert kit.suppressed.calls == []


def test_should_stop_hands_the_rest_of_the_batch_back(kit: Kit) -> None:
    first = kit.outbox.add(new_due("welcome", "u1", CREATED))
    fresh = kit.outbox.add(new_due("welcome", "u2", CREATED))
    retried = kit.outbox.add(new_due("tips", "u3", CREATED, attempts=1), status=Status.RETRYING)
    asked: list[None] = []

    def should_stop() -> bool:  # before the claim, before the first send, then stop
        asked.append(None)
        return len(asked) > 2

    assert kit.dispatcher.dispatch(NOW, should_stop=should_stop) == {"sent": 1}
    assert len(kit.transport.messages) == 1
    assert {i: (r.status, r.attempts) for i, r in kit.outbox.rows().items()} == {
        first: (Status.SENT, 1),
        fresh: (Status.PENDING, 0),
        retried: (Status.RETRYING, 1),
    }
    assert kit.dispatcher.dispatch(NOW) == {"sent": 2}  # the next dispatch sends them


def test_a_stop_before_the_claim_claims_nothing(kit: Kit) -> None:
    delivery = kit.outbox.add(new_due("welcome", "u1", CREATED))
    assert kit.dispatcher.dispatch(NOW, should_stop=lambda: True) == {}
    assert kit.outbox.row(delivery).status is Status.PENDING


def test_an_unknown_rule_fails_the_delivery(kit: Kit) -> None:
    gone = kit.outbox.add(new_due("retired", "u1", CREATED))
    kept = kit.outbox.add(new_due("welcome", "u2", CREATED))
    assert kit.dispatcher.dispatch(NOW) == {"failed": 1, "sent": 1}
    row = kit.outbox.row(gone)
    assert (row.status, row.reason) == (Status.FAILED, "rule 'retired' is no longer defined")
    assert [m["To"] for m in kit.transport.messages] == ["u2@example.com"]
    assert kit.outbox.row(kept).status is Status.SENT


def test_claims_a_stopped_dispatcher_left_are_recovered(kit: Kit) -> None:
    unsent = kit.outbox.add(new_due("welcome", "u1", CREATED))
    in_flight = kit.outbox.add(new_due("welcome", "u2", CREATED))
    kit.outbox.claim_due(NOW)
    kit.outbox.start_sending(in_flight, NOW)
    later = NOW + timedelta(minutes=11)  # past the 10-minute sending lease
    assert kit.dispatcher.dispatch(later) == {"requeued": 1, "unknown": 1, "sent": 1}
    assert kit.outbox.row(unsent).status is Status.SENT
    assert kit.outbox.row(in_flight).status is Status.UNKNOWN
    assert [m["To"] for m in kit.transport.messages] == ["u1@example.com"]
