"""Localised emails end to end: a user's `locale` (an identify trait, or Segment's
`context.locale`) picks the shipped Spanish translation of the sales welcome; the dry run
previews the same; anyone else gets the default."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Project, make_project

SIGNUP = "2026-03-02T09:00:00Z"
AT = "2026-03-02T09:05:00Z"


def identify(user_id: str, traits: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": user_id,
        "messageId": f"id-{user_id}",
        "timestamp": SIGNUP,
        "context": context,
        "traits": {
            "email": f"{user_id}@example.com",
            "persona": "sales",
            "signup_source": "organic",
            "createdAt": SIGNUP,
            "first_name": user_id.title(),
            **traits,
        },
    }


def project_with_users(tmp_path: Path) -> Project:
    project = make_project(
        tmp_path, "sqlite:///lifecycle.db", mail={"quiet_hours": None, "daily_cap": None}
    )
    lines = [
        identify("lupe", {}, {"locale": "es-MX"}),  # Segment's context: no es-MX, so es
        identify("pablo", {"locale": "es_ES"}, {"locale": "en-US"}),  # the trait wins
        identify("kim", {}, {"locale": "ko-KR"}),  # no Korean translation: the default
        identify("ned", {}, {}),
    ]
    source = tmp_path / "users.jsonl"
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    project.run("ingest", str(source))
    return project


def outbox(project: Project) -> dict[str, EmailMessage]:
    messages = {}
    for path in project.outbox.glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(message, EmailMessage)
        messages[str(message["To"]).split("@")[0]] = message
    return messages


def test_each_user_gets_the_welcome_in_their_language(tmp_path: Path) -> None:
    project = project_with_users(tmp_path)
    preview = {
        row["user_id"]: row["email"]["subject"]
        for row in project.json("dry-run", "--at", AT, "--rule", "welcome-sales-marketing")
    }
    project.run("tick", "--at", AT)
    sent = outbox(project)
    assert sorted(sent) == ["kim", "lupe", "ned", "pablo"]
    for user in ("lupe", "pablo"):
        message = sent[user]
        assert str(message["Subject"]).startswith("Te damos la bienvenida a Airtouch")
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None
        assert html is not None
        assert f"Hola, {user.title()}:" in text.get_content()
        assert "Darte de baja" in text.get_content()  # the Spanish footer
        assert '<html lang="es">' in html.get_content()
    for user in ("kim", "ned"):
        assert str(sent[user]["Subject"]).startswith("Welcome to Airtouch")
    assert preview == {user: str(message["Subject"]) for user, message in sent.items()}
