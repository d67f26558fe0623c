"""Dispatch over several SMTP sessions at once (mail.smtp.sessions), on SQLite and PostgreSQL,
to a real SMTP server on loopback: each email once, one connection per session, stops and
refusals with the semantics of a single session."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.smtp import SmtpTransport
from engine.rules.language import RuleSet, load_rules
from engine.runner import Runner
from engine.store import Store, UserUpsert
from tests.project_files import write_project
from tests.smtp_server import SmtpServer

RULES = """
rules:
  - id: welcome
    send: {email: note}
"""
SESSIONS = 3


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, RULES)


def smtp_runner(project: Path, store: Store, port: int, sessions: int = SESSIONS) -> Runner:
    smtp = {"host": "127.0.0.1", "port": port, "security": "none", "timeout": "5s"}
    config = Config.model_validate(
        {
            "base_dir": project,
            "mail": {
                "from": "T <t@x.io>",
                "transport": "smtp",
                "smtp": {**smtp, "sessions": sessions},
            },
        }
    )
    renderer = Renderer(project / "templates")
    rules = load_rules(
        project / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    return Runner(
        store=store,
        rules=RuleSet(rules.rules),
        renderer=renderer,
        transport=SmtpTransport(config.mail.smtp),
        config=config,
        random=lambda: 0.0,
    )


def due(store: Store, runner: Runner, now: datetime, users: int) -> None:
    ids = [f"u{n:03d}" for n in range(users)]
    store.people.upsert_users(
        [UserUpsert(i, {}, email=f"{i}@example.com", signed_up_at=now) for i in ids], now
    )
    runner.tick(now, dispatch=False)


def ledger(store: Store) -> list[dict[str, Any]]:
    return [d for d in store.reads.deliveries() if d["email_template"]]


def test_each_email_goes_out_once_over_one_connection_per_session(
    project: Path, store: Store, now: datetime, smtp_server: SmtpServer
) -> None:
    runner = smtp_runner(project, store, smtp_server.port)
    due(store, runner, now, 30)
    smtp_server.slow(0.01)  # every session has a message in flight at once
    assert runner.dispatch(now) == {"sent": 30}
    received = Counter(str(m.message["Message-ID"]) for m in smtp_server.messages)
    assert set(received.values()) == {1}
    assert set(received) == {d["message_id"] for d in ledger(store) if d["status"] == "sent"}
    assert smtp_server.greetings == SESSIONS  # each session kept its connection


def test_a_stop_finishes_every_send_in_flight_and_hands_the_rest_back(
    project: Path, store: Store, now: datetime, smtp_server: SmtpServer
) -> None:
    runner = smtp_runner(project, store, smtp_server.port)
    due(store, runner, now, 30)
    smtp_server.slow(0.02)
    outcome = runner.dispatch(now, should_stop=lambda: len(smtp_server.messages) >= 4)
    statuses = Counter(d["status"] for d in ledger(store))
    assert statuses["sending"] == statuses["claimed"] == 0, statuses  # nothing left in doubt
    assert outcome["sent"] == statuses["sent"] == len(smtp_server.messages)
    assert statuses["pending"] == 30 - statuses["sent"] > 0
    smtp_server.slow(0)
    assert runner.dispatch(now)["sent"] == statuses["pending"]
    received = Counter(str(m.message["Message-ID"]) for m in smtp_server.messages)
    assert len(received) == 30
    assert set(received.values()) == {1}


def test_refusals_keep_their_meaning_on_parallel_sessions(
    project: Path, store: Store, now: datetime, smtp_server: SmtpServer
) -> None:
    runner = smtp_runner(project, store, smtp_server.port)
    due(store, runner, now, 12)
    smtp_server.reply_next_rcpt("550 5.1.1 <gone@example.com>: user unknown")
    smtp_server.reply_next_data("451 4.3.0 try again later")
    assert runner.dispatch(now) == {"sent": 10, "failed": 1, "retrying": 1}
    rows = {d["status"]: d for d in ledger(store)}
    assert rows["failed"]["reason"].startswith("rejected: 550")
    assert rows["retrying"]["send_at"] > now
    assert store.guides.is_suppressed(rows["failed"]["user_id"])  # the hard bounce
    assert not store.guides.is_suppressed(rows["retrying"]["user_id"])
