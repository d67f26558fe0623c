"""The webhook channel over a real database (SQLite and PostgreSQL) and a real HTTP receiver
on loopback that checks every Standard Webhooks signature: statuses and retries as for
email, one id per ledger row, a crash mid-request left `unknown`, a queue of its own that
email dispatch never touches, passes bounded in time, and no secret in any log line."""

from __future__ import annotations

import base64
import logging
import socket
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.signing import webhook_id
from engine.delivery.testing import RecordingTransport
from engine.delivery.webhook_body import webhook_names
from engine.delivery.webhook_http import HttpxSender, WebhookSender
from engine.rules.language import load_rules
from engine.runner import Runner
from engine.store import Store, UserUpsert
from tests.project_files import write_project
from tests.webhook_server import WebhookServer

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "whsec_" + base64.b64encode(b"integration-tests-webhook-key!!!").decode()
TOKEN = "Bearer s3cr3t-t0ken"  # a credential in a header: never logged
SECRET_PATH = "/services/T000/B000/XXXXsecretXXXX"  # a Slack URL's path is a secret too
ALERT = '{"user": {{ user.id | tojson }}, "company": {{ user.traits.get("company") | tojson }}}'


def rules_for(url: str) -> str:
    return f"""
rules:
  - id: pql
    send:
      webhook:
        url: {url}
        body: alert
        headers: {{Authorization: "{TOKEN}", X-Team: sales}}
  - id: welcome
    send: {{email: note}}
"""


def make_runner(
    tmp_path: Path,
    store: Store,
    url: str,
    *,
    body: str = ALERT,
    sender: WebhookSender | None = None,
    **webhooks: Any,
) -> tuple[Runner, RecordingTransport]:
    (tmp_path / "project").mkdir(parents=True)
    project = write_project(tmp_path / "project", rules_for(url))
    (project / "templates" / "alert").mkdir()
    (project / "templates" / "alert" / "body.json").write_text(body)
    config = Config.model_validate(
        {
            "base_dir": project,
            "mail": {"from": "T <t@x.io>"},
            "webhooks": {"secret": SECRET, **webhooks},
        }
    )
    renderer = Renderer(project / "templates")
    rules = load_rules(
        project / "rules",
        default_expires=timedelta(days=1),
        templates=renderer.names(),
        webhooks=config.webhook_policy(webhook_names(project / "templates")),
    )
    transport = RecordingTransport()
    runner = Runner(
        store=store,
        rules=rules,
        renderer=renderer,
        transport=transport,
        config=config,
        random=lambda: 0.0,
        webhook_sender=sender,
    )
    return runner, transport


def add_users(store: Store, *ids: str) -> None:
    store.people.upsert_users(
        [
            UserUpsert(
                id=user_id,
                email=f"{user_id}@x.io",
                signed_up_at=NOW - timedelta(hours=1),
                traits={"company": 'Acme "Quotes" & Co'},
            )
            for user_id in ids
        ],
        NOW,
    )


def webhook_rows(store: Store) -> list[dict[str, Any]]:
    return [row for row in store.reads.deliveries() if row["rule_id"] == "pql"]


@pytest.fixture
def server() -> Any:
    with WebhookServer(SECRET) as running:
        yield running


def test_a_webhook_is_signed_sent_once_and_apart_from_the_emails(
    tmp_path: Path, store: Store, server: WebhookServer
) -> None:
    runner, transport = make_runner(tmp_path, store, server.url + "/hooks/pql")
    add_users(store, "u1")
    runner.tick(NOW, dispatch=False)
    # The email dispatch claims emails only: the webhook row waits for its own queue.
    assert runner.dispatch(NOW) == {"sent": 1}
    assert len(transport.messages) == 1
    [row] = webhook_rows(store)
    assert row["status"] == "pending"
    assert row["webhook_template"] == "alert"
    assert row["email_template"] is None
    assert row["email_to"] is None
    assert server.received == []

    assert runner.dispatch_webhooks(NOW) == {"sent": 1}
    [request] = server.received
    assert request.verified
    assert request.path == "/hooks/pql"
    assert request.headers["webhook-id"] == webhook_id("pql", "u1", "")
    assert request.headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert request.headers["authorization"] == TOKEN
    assert request.headers["x-team"] == "sales"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {"user": "u1", "company": 'Acme "Quotes" & Co'}
    [row] = webhook_rows(store)
    assert row["status"] == "sent"
    assert row["reply"] == "HTTP 200 OK"
    assert row["sent_at"] == NOW

    report = runner.tick(NOW + timedelta(minutes=5))
    assert report.webhooks == {}
    assert len(server.received) == 1


def test_429_and_5xx_are_retried_with_backoff_and_the_same_id(
    tmp_path: Path, store: Store, server: WebhookServer
) -> None:
    runner, _ = make_runner(tmp_path, store, server.url + "/h")
    add_users(store, "u1")
    server.answer(503, 429)
    report = runner.tick(NOW)
    assert report.webhooks == {"retrying": 1}
    [row] = webhook_rows(store)
    assert row["status"] == "retrying"
    assert "HTTP 503" in row["reason"]
    first = row["send_at"]
    assert first == NOW + timedelta(seconds=15)  # webhooks.retry.first_delay 30s, jitter 0
    assert runner.dispatch_webhooks(first - timedelta(seconds=1)) == {}  # not due yet
    assert runner.dispatch_webhooks(first) == {"retrying": 1}
    [row] = webhook_rows(store)
    assert "HTTP 429" in row["reason"]
    assert runner.dispatch_webhooks(row["send_at"]) == {"sent": 1}
    assert [r.verified for r in server.received] == [True, True, True]
    assert {r.headers["webhook-id"] for r in server.received} == {webhook_id("pql", "u1", "")}
    assert webhook_rows(store)[0]["attempts"] == 3


def test_another_4xx_fails_at_once(tmp_path: Path, store: Store, server: WebhookServer) -> None:
    runner, _ = make_runner(tmp_path, store, server.url + "/h")
    add_users(store, "u1")
    server.answer(400)
    assert runner.tick(NOW).webhooks == {"failed": 1}
    [row] = webhook_rows(store)
    assert row["status"] == "failed"
    assert "HTTP 400" in row["reason"]
    assert runner.dispatch_webhooks(NOW + timedelta(days=1)) == {}
    assert len(server.received) == 1


def test_a_receiver_that_is_down_is_retried_until_the_give_up_age(
    tmp_path: Path, store: Store
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner, _ = make_runner(
        tmp_path, store, f"http://127.0.0.1:{port}/h", retry={"give_up_after": "1h"}
    )
    add_users(store, "u1")
    assert runner.tick(NOW).webhooks == {"retrying": 1}
    [row] = webhook_rows(store)
    assert "ConnectError" in row["reason"]
    assert runner.dispatch_webhooks(NOW + timedelta(hours=2)) == {"failed": 1}
    assert "gave up after 2 attempts" in webhook_rows(store)[0]["reason"]


class Crash(BaseException):
    """The process dying between the receiver's reply and the ledger write."""


class CrashAfterSending:
    def __init__(self, real: WebhookSender) -> None:
        self.real = real

    def post(self, url: str, headers: dict[str, str], body: bytes) -> str:
        self.real.post(url, headers, body)
        raise Crash


def test_a_crash_after_sending_leaves_the_row_unknown_and_never_resends(
    tmp_path: Path, store: Store, server: WebhookServer
) -> None:
    real = HttpxSender(connect=timedelta(seconds=5), read=timedelta(seconds=5))
    runner, _ = make_runner(tmp_path, store, server.url + "/h", sender=CrashAfterSending(real))
    add_users(store, "u1")
    runner.tick(NOW, dispatch=False)
    with pytest.raises(Crash):
        runner.dispatch_webhooks(NOW)
    assert webhook_rows(store)[0]["status"] == "sending"
    restarted, _ = make_runner(tmp_path / "again", store, server.url + "/h")
    later = NOW + timedelta(minutes=11)  # past webhooks.retry.sending_lease (10m)
    assert restarted.dispatch_webhooks(later) == {"unknown": 1}
    [row] = webhook_rows(store)
    assert row["status"] == "unknown"
    assert restarted.dispatch_webhooks(later + timedelta(days=1)) == {}
    assert len(server.received) == 1  # the one before the crash
    real.close()


class SlowSender:
    """Each request takes 20 (fake) seconds: the pass's bound, without a timed test."""

    def __init__(self, real: WebhookSender) -> None:
        self.real = real
        self.clock = 0.0

    def post(self, url: str, headers: dict[str, str], body: bytes) -> str:
        self.clock += 20
        return self.real.post(url, headers, body)


def test_a_pass_stops_at_its_time_bound_and_hands_the_rest_back(
    tmp_path: Path, store: Store, server: WebhookServer
) -> None:
    real = HttpxSender(connect=timedelta(seconds=5), read=timedelta(seconds=5))
    slow = SlowSender(real)
    runner, _ = make_runner(tmp_path, store, server.url + "/h", sender=slow, pass_time="30s")
    runner.webhooks.monotonic = lambda: slow.clock
    add_users(store, "u1", "u2", "u3")
    runner.tick(NOW, dispatch=False)
    assert runner.dispatch_webhooks(NOW) == {"sent": 2}
    statuses = sorted(row["status"] for row in webhook_rows(store))
    assert statuses == ["pending", "sent", "sent"]  # handed back unsent, not left claimed
    slow.clock = 0.0
    assert runner.dispatch_webhooks(NOW) == {"sent": 1}
    assert len(server.received) == 3
    real.close()


def test_a_body_that_is_not_json_fails_its_row_naming_the_template(
    tmp_path: Path, store: Store, server: WebhookServer
) -> None:
    runner, _ = make_runner(tmp_path, store, server.url + "/h", body='{"user": {{ user.id }}}')
    add_users(store, "u1")
    assert runner.tick(NOW).webhooks == {"failed": 1}
    [row] = webhook_rows(store)
    assert "alert/body.json: the body is not JSON" in row["reason"]
    assert server.received == []


def test_no_secret_reaches_the_logs_or_the_ledger(
    tmp_path: Path, store: Store, server: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    runner, _ = make_runner(tmp_path, store, server.url + SECRET_PATH)
    add_users(store, "u1")
    server.answer(503)
    runner.tick(NOW)
    runner.dispatch_webhooks(NOW + timedelta(hours=1))
    assert [r.verified for r in server.received] == [True, True]
    signatures = [r.headers["webhook-signature"] for r in server.received]
    ledger = repr(store.reads.deliveries())
    for secret in (SECRET, SECRET_PATH, TOKEN, "s3cr3t", *signatures):
        assert secret not in caplog.text
        assert secret not in ledger
    assert "127.0.0.1" in caplog.text  # the host is what the logs say


class StuckSender:
    """A receiver that does not answer until the test lets it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def post(self, url: str, headers: dict[str, str], body: bytes) -> str:
        self.entered.set()
        self.release.wait()
        return "HTTP 200 OK"


def test_a_stuck_receiver_does_not_hold_up_the_emails(
    tmp_path: Path, store: Store, server: WebhookServer
) -> None:
    stuck = StuckSender()
    runner, transport = make_runner(tmp_path, store, server.url + "/h", sender=stuck)
    add_users(store, "u1")
    runner.tick(NOW, dispatch=False)
    outcome: list[Counter[str]] = []
    # The daemon's webhooks job, in a thread of its own as APScheduler runs it.
    hooks = threading.Thread(target=lambda: outcome.append(runner.dispatch_webhooks(NOW)))
    hooks.start()
    try:
        assert stuck.entered.wait(timeout=30)
        assert webhook_rows(store)[0]["status"] == "sending"
        assert runner.dispatch(NOW) == {"sent": 1}  # while the webhook is still in flight
        assert len(transport.messages) == 1
    finally:
        stuck.release.set()
        hooks.join()
    assert outcome == [Counter({"sent": 1})]
