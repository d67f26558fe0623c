"""Delivery policy over a real database: retries, bounces, abandoned claims, quiet hours and
the frequency cap. The transport here is a scripted fake; the SMTP tests use a real server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from engine.delivery.dispatcher import backoff
from engine.delivery.mail import PermanentSendError, TransientSendError
from engine.delivery.render import Renderer
from engine.rules.language import load_rules
from engine.runner import Runner
from engine.store import Store, UserUpsert
from tests.project_files import write_project

RULES = """
rules:
  - id: welcome
    priority: 10
    send: {email: note}
  - id: tips
    send: {email: note}
  - id: extra
    priority: -5
    send: {email: note}
  - id: urgent
    priority: -10
    frequency_cap: false
    quiet_hours: false
    send: {email: note}
"""


class ScriptedTransport:
    """Answers each send with the next scripted outcome (an exception or None = accept)."""

    def __init__(self, *script: Exception | None) -> None:
        self.script = list(script)
        self.accepted: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> str:
        outcome = self.script.pop(0) if self.script else None
        if outcome is not None:
            raise outcome
        self.accepted.append(message)
        return "250 2.0.0 queued"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, RULES)


def runner(
    project: Path, store: Store, transport: Any, only: str | None = "welcome", **mail: Any
) -> Runner:
    config = Config.model_validate({"base_dir": project, "mail": {"from": "T <t@x.io>", **mail}})
    renderer = Renderer(project / "templates")
    rules = load_rules(
        project / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    if only:
        from engine.rules.language import RuleSet

        rules = RuleSet(tuple(r for r in rules.rules if r.id == only))
    return Runner(
        store=store,
        rules=rules,
        renderer=renderer,
        transport=transport,
        config=config,
        random=lambda: 0.0,
    )


def seed(store: Store, now: datetime, *ids: str, tz: str | None = None) -> None:
    store.people.upsert_users(
        [UserUpsert(i, {}, email=f"{i}@example.com", timezone=tz, signed_up_at=now) for i in ids],
        now,
    )


def rows(store: Store) -> dict[str, dict[str, Any]]:
    return {f"{d['rule_id']}/{d['user_id']}": d for d in store.reads.deliveries()}


def test_backoff_doubles_with_jitter_and_a_ceiling() -> None:
    minute, hour = timedelta(minutes=1), timedelta(hours=1)
    assert [backoff(n, minute, hour, 0.0) for n in (1, 2, 3)] == [
        timedelta(seconds=30),
        timedelta(minutes=1),
        timedelta(minutes=2),
    ]
    assert backoff(1, minute, hour, 0.999) < minute
    assert backoff(20, minute, hour, 0.999) < hour


def test_a_temporary_failure_is_retried_and_delivered_once(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    transport = ScriptedTransport(TransientSendError("451 4.3.0 try later"))
    engine = runner(project, store, transport)
    engine.tick(now)
    row = rows(store)["welcome/u1"]
    assert (row["status"], row["reply"]) == ("retrying", "451 4.3.0 try later")
    assert row["send_at"] == now + timedelta(seconds=30)
    assert engine.dispatch(now + timedelta(seconds=29)) == {}  # not due yet
    assert engine.dispatch(now + timedelta(seconds=30)) == {"sent": 1}
    row = rows(store)["welcome/u1"]
    assert (row["status"], row["attempts"], row["reply"]) == ("sent", 2, "250 2.0.0 queued")
    assert len(transport.accepted) == 1
    assert engine.dispatch(now + timedelta(hours=1)) == {}


def test_temporary_failures_give_up_after_the_configured_age(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    down = [ConnectionRefusedError("refused")] * 10
    engine = runner(
        project,
        store,
        ScriptedTransport(*down),
        retry={"first_delay": "10m", "give_up_after": "1h"},
    )
    engine.tick(now)
    at = now
    for _ in range(8):
        at += timedelta(minutes=30)
        engine.dispatch(at)
    row = rows(store)["welcome/u1"]
    assert row["status"] == "failed"
    assert row["reason"].startswith("gave up after")
    assert "ConnectionRefusedError: refused" in row["reason"]


def test_a_hard_bounce_fails_and_suppresses_the_address(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    bounce = PermanentSendError("550 5.1.1 no such user", bounce=True)
    runner(project, store, ScriptedTransport(bounce)).tick(now)
    row = rows(store)["welcome/u1"]
    assert (row["status"], row["reply"]) == ("failed", "550 5.1.1 no such user")
    assert store.guides.is_suppressed("u1")
    # the next rule for that user records the email as skipped, with the reason
    runner(project, store, ScriptedTransport(), only="tips").tick(now)
    tip = rows(store)["tips/u1"]
    assert (tip["status"], tip["reason"]) == ("skipped", "bounced")


def test_a_permanent_rejection_is_not_retried_and_not_a_bounce(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    engine = runner(
        project, store, ScriptedTransport(PermanentSendError("554 5.7.1 policy", bounce=False))
    )
    engine.tick(now)
    assert rows(store)["welcome/u1"]["status"] == "failed"
    assert not store.guides.is_suppressed("u1")
    assert engine.dispatch(now + timedelta(days=1)) == {}


def _abandon(store: Store, now: datetime) -> None:
    (due,) = store.outbox.claim_due(now)
    assert due.rule_id == "welcome"
    assert store.outbox.start_sending(due.id, now)  # handed to the server, then the process "dies"


def test_a_claim_abandoned_before_sending_is_queued_again_and_sent_once(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    transport = ScriptedTransport()
    engine = runner(project, store, transport)
    engine.tick(now, dispatch=False)
    store.outbox.claim_due(now)  # claimed; the process "dies" before handing it to the server
    assert engine.dispatch(now + timedelta(minutes=5)) == {}  # inside the lease: leave it
    assert engine.dispatch(now + timedelta(minutes=11)) == {"requeued": 1, "sent": 1}
    assert rows(store)["welcome/u1"]["status"] == "sent"
    assert rows(store)["welcome/u1"]["attempts"] == 1
    assert len(transport.accepted) == 1


def test_a_stopping_dispatcher_finishes_the_send_in_flight_and_hands_back_the_rest(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1", "u2", "u3")
    transport = ScriptedTransport()
    engine = runner(project, store, transport)
    engine.tick(now, dispatch=False)
    asked: list[int] = []

    def stop_after_the_first_send() -> bool:
        asked.append(len(transport.accepted))
        return len(transport.accepted) >= 1

    assert engine.dispatch(now, should_stop=stop_after_the_first_send) == {"sent": 1}
    statuses = sorted(row["status"] for row in rows(store).values())
    assert statuses == ["pending", "pending", "sent"]
    assert all(
        row["attempts"] == (1 if row["status"] == "sent" else 0) for row in rows(store).values()
    )
    assert engine.dispatch(now) == {"sent": 2}  # the next dispatcher sends the rest, once
    assert len(transport.accepted) == 3


def test_an_abandoned_claim_becomes_unknown_and_is_not_resent(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    transport = ScriptedTransport()
    engine = runner(project, store, transport)
    engine.tick(now, dispatch=False)
    _abandon(store, now)
    assert engine.dispatch(now + timedelta(minutes=5)) == {}  # inside the lease: leave it
    assert engine.dispatch(now + timedelta(minutes=11)) == {"unknown": 1}
    row = rows(store)["welcome/u1"]
    assert row["status"] == "unknown"
    assert "may have gone out" in row["reason"]
    assert transport.accepted == []


def test_an_abandoned_claim_is_resent_when_the_operator_opts_in(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    transport = ScriptedTransport()
    engine = runner(project, store, transport, retry={"resend_unknown": True})
    engine.tick(now, dispatch=False)
    _abandon(store, now)
    assert engine.dispatch(now + timedelta(minutes=11)) == {"requeued": 1, "sent": 1}
    assert len(transport.accepted) == 1


QUIET = {"start": "21:00", "end": "08:00"}


@pytest.mark.parametrize(
    ("tz", "at", "expected"),
    [
        # New York springs forward on 2026-03-08: 22:00 EST, then 08:00 EDT (12:00 UTC)
        (
            "America/New_York",
            datetime(2026, 3, 8, 3, 0, tzinfo=UTC),
            datetime(2026, 3, 8, 12, 0, tzinfo=UTC),
        ),
        # Berlin falls back on 2026-10-25: 23:30 CEST, then 08:00 CET (07:00 UTC)
        (
            "Europe/Berlin",
            datetime(2026, 10, 24, 21, 30, tzinfo=UTC),
            datetime(2026, 10, 25, 7, 0, tzinfo=UTC),
        ),
        # after midnight, inside the window: the same morning
        (
            "Europe/Berlin",
            datetime(2026, 10, 26, 4, 0, tzinfo=UTC),
            datetime(2026, 10, 26, 7, 0, tzinfo=UTC),
        ),
        # outside the window: now
        (
            "America/New_York",
            datetime(2026, 3, 9, 15, 0, tzinfo=UTC),
            datetime(2026, 3, 9, 15, 0, tzinfo=UTC),
        ),
    ],
)
def test_quiet_hours_follow_the_users_clock_across_dst(
    project: Path, store: Store, tz: str, at: datetime, expected: datetime
) -> None:
    seed(store, at, "u1", tz=tz)
    transport = ScriptedTransport()
    engine = runner(project, store, transport, quiet_hours=QUIET)
    (preview,) = engine.dry_run(at)
    assert preview.planned.send_at == expected
    engine.tick(at)
    assert rows(store)["welcome/u1"]["send_at"] == expected
    assert len(transport.accepted) == (1 if expected == at else 0)
    engine.dispatch(expected)
    assert len(transport.accepted) == 1


def test_a_rule_can_ignore_quiet_hours(project: Path, store: Store) -> None:
    at = datetime(2026, 3, 9, 3, 0, tzinfo=UTC)  # 23:00 in New York
    seed(store, at, "u1", tz="America/New_York")
    engine = runner(project, store, ScriptedTransport(), only="urgent", quiet_hours=QUIET)
    (preview,) = engine.dry_run(at)
    assert preview.planned.send_at == at


def test_the_cap_skips_the_lowest_priority_first(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1", "u2")
    transport = ScriptedTransport()
    engine = runner(project, store, transport, only=None, daily_cap=2)
    previews = {f"{p.planned.rule_id}/{p.planned.user_id}": p.planned for p in engine.dry_run(now)}
    assert previews["extra/u1"].reason == "frequency_cap"
    assert previews["urgent/u1"].send_at == now  # exempt from the cap
    engine.tick(now)
    got = {k: (d["status"], d["reason"]) for k, d in rows(store).items() if k.endswith("/u1")}
    assert got == {
        "welcome/u1": ("sent", None),
        "tips/u1": ("sent", None),
        "extra/u1": ("skipped", "frequency_cap"),
        "urgent/u1": ("sent", None),
    }
    assert len(transport.accepted) == 6


def test_the_cap_counts_emails_from_earlier_ticks(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    runner(project, store, ScriptedTransport(), only="welcome", daily_cap=1).tick(now)
    later = now + timedelta(hours=23)
    runner(project, store, ScriptedTransport(), only="tips", daily_cap=1).tick(later)
    assert rows(store)["tips/u1"]["reason"] == "frequency_cap"


def test_unsubscribe_mailto_is_offered(project: Path, store: Store, now: datetime) -> None:
    seed(store, now, "u1")
    transport = ScriptedTransport()
    runner(project, store, transport, unsubscribe_mailto="unsub@x.io").tick(now)
    (message,) = transport.accepted
    header = str(message["List-Unsubscribe"])
    assert header.startswith("<http://127.0.0.1:8000/unsubscribe/")
    assert header.endswith(", <mailto:unsub@x.io?subject=unsubscribe>")


def test_the_header_carries_the_same_unsubscribe_link_as_the_bodies(
    project: Path, store: Store, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tokens are timestamped, so two calls a second apart differ: one link per message.
    calls = iter(range(1000))
    monkeypatch.setattr(
        "engine.delivery.compose.unsubscribe_url",
        lambda base, secret, user: f"{base}/u/{next(calls)}",
    )
    seed(store, now, "u1")
    transport = ScriptedTransport()
    runner(project, store, transport).tick(now)
    (message,) = transport.accepted
    link = str(message["List-Unsubscribe"]).removeprefix("<").removesuffix(">")
    text = message.get_body(("plain",))
    assert text is not None
    assert link in text.get_content()


def test_a_claim_handed_back_cannot_start_sending(
    project: Path, store: Store, now: datetime
) -> None:
    seed(store, now, "u1")
    runner(project, store, ScriptedTransport()).tick(now, dispatch=False)
    (due,) = store.outbox.claim_due(now)
    assert store.outbox.release_claims([due.id], now) == 1
    assert not store.outbox.start_sending(due.id, now)  # its dispatcher must not send it now
    assert rows(store)["welcome/u1"]["status"] == "pending"
