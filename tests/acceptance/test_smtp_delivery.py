"""`lifecycle tick` delivering to a real SMTP server (aiosmtpd on loopback): every header a
mailbox provider expects, retries, bounces, an outage, and the one-click unsubscribe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from engine.clock import SystemClock
from engine.config import SmtpConfig, load_config
from engine.http.app import create_app
from engine.http.server import running_server
from engine.store import Store, connect
from tests.acceptance.conftest import DATA, Project, make_project
from tests.smtp_server import SmtpServer

AT = "2026-03-03T09:00:00Z"  # 24h after the fixture signups


def smtp_project(tmp_path: Path, port: int, **mail: Any) -> Project:
    smtp = {"host": "127.0.0.1", "port": port, "security": "none", "timeout": "5s"}
    project = make_project(
        tmp_path,
        "sqlite:///lifecycle.db",
        mail={
            "transport": "smtp",
            "smtp": smtp,
            "unsubscribe_mailto": "unsub@airtouch.example",
            "quiet_hours": None,
            "daily_cap": None,
            **mail,
        },
    )
    project.run("ingest", str(DATA / "airtouch.jsonl"))
    return project


def sent_rows(project: Project) -> list[dict[str, Any]]:
    return [d for d in project.deliveries() if d["email_template"]]


def test_tick_delivers_every_email_with_the_headers_providers_expect(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = smtp_project(tmp_path, smtp_server.port)
    project.run("tick", "--at", AT)
    rows = sent_rows(project)
    assert rows
    assert all(d["status"] == "sent" for d in rows)
    assert all(d["reply"].startswith("250") for d in rows)
    received = {m.message["Message-ID"]: m for m in smtp_server.messages}
    assert sorted(received) == sorted(d["message_id"] for d in rows)
    # The dispatch went over its parallel sessions, one connection each, never more.
    assert 1 <= smtp_server.greetings <= SmtpConfig().sessions
    for row in rows:
        message = received[row["message_id"]].message
        assert message["To"] == row["email_to"]
        assert message["From"] == "Airtouch <hello@airtouch.example>"
        assert message["Subject"]
        assert message["Date"]
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None
        assert html is not None
        unsubscribe = str(message["List-Unsubscribe"])
        url = unsubscribe.split(">")[0].removeprefix("<")
        assert url.startswith("http://127.0.0.1:8000/unsubscribe/")
        assert "<mailto:unsub@airtouch.example?subject=unsubscribe>" in unsubscribe
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert url in text.get_content()
        assert url in html.get_content()
    # a second tick sends nothing again
    project.run("tick", "--at", AT)
    assert len(smtp_server.messages) == len(rows)


def test_a_451_is_retried_and_delivered_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    project = smtp_project(tmp_path, smtp_server.port, retry={"first_delay": "1m"})
    smtp_server.reply_next_data("451 4.3.0 Try again later")
    project.run("tick", "--at", AT)
    retrying = [d for d in sent_rows(project) if d["status"] == "retrying"]
    assert len(retrying) == 1
    assert retrying[0]["reply"] == "451 4.3.0 Try again later"
    project.run("tick", "--at", "2026-03-03T09:02:00Z")
    rows = sent_rows(project)
    assert all(d["status"] == "sent" for d in rows)
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert sorted(ids) == sorted(d["message_id"] for d in rows)  # each exactly once


def test_a_550_fails_suppresses_and_is_not_retried(tmp_path: Path, smtp_server: SmtpServer) -> None:
    project = smtp_project(tmp_path, smtp_server.port)
    smtp_server.reply_next_rcpt("550 5.1.1 <x>: Recipient address rejected: User unknown")
    project.run("tick", "--at", AT)
    failed = [d for d in sent_rows(project) if d["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["reply"].startswith("550 5.1.1")
    with project.store() as store:
        assert store.guides.is_suppressed(failed[0]["user_id"])
    before = len(smtp_server.messages)
    project.run("tick", "--at", "2026-03-04T09:00:00Z")
    assert len(smtp_server.messages) == before
    assert [d["status"] for d in sent_rows(project) if d["id"] == failed[0]["id"]] == ["failed"]


def test_server_down_then_up_loses_nothing(tmp_path: Path) -> None:
    server = SmtpServer()
    server.start()
    port = server.port
    server.stop()
    project = smtp_project(tmp_path, port, retry={"first_delay": "1m"})
    project.run("tick", "--at", AT)
    rows = sent_rows(project)
    assert rows
    assert all(d["status"] == "retrying" for d in rows)
    with SmtpServer(port=port) as again:
        project.run("tick", "--at", "2026-03-03T09:05:00Z")
        assert all(d["status"] == "sent" for d in sent_rows(project))
        assert len(again.messages) == len(rows)


def test_one_click_unsubscribe_round_trip(tmp_path: Path, smtp_server: SmtpServer) -> None:
    project = smtp_project(tmp_path, smtp_server.port)
    project.run("tick", "--at", AT)
    message = smtp_server.messages[0].message
    user = next(
        d["user_id"] for d in sent_rows(project) if d["message_id"] == message["Message-ID"]
    )
    path = str(message["List-Unsubscribe"]).split(">")[0].removeprefix("<http://127.0.0.1:8000")
    config = load_config(project.config_file, environ={})
    engine = connect(config.database_url)
    try:
        app = create_app(store=Store(engine), config=config, clock=SystemClock())
        with running_server(app) as base, httpx.Client(base_url=base) as client:
            page = client.get(path)
            assert page.status_code == 200
            assert "<form" in page.text
            assert not Store(engine).guides.is_suppressed(user)  # a GET never unsubscribes
            response = client.post(path, data={"List-Unsubscribe": "One-Click"})
            assert response.status_code == 200
        assert Store(engine).guides.is_suppressed(user)
    finally:
        engine.dispose()
    rows = project.json("dry-run", "--at", "2026-03-04T09:00:00Z", "--user", user)
    assert all(r["email"] is None for r in rows)
    assert all(r["reason"] == "unsubscribed" for r in rows if r["status"] == "skipped")
