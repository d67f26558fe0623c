"""A tick with mail.tracking on, on SQLite and PostgreSQL: the email the dispatcher hands over
has its link rewritten and a pixel whose token names the ledger row's Message-ID and rule, and
the variant's template is the one sent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.delivery.tracking import read_tracking_token
from engine.rules.language import load_rules
from engine.runner import Runner
from engine.store import Store, UserUpsert
from tests.conftest import NOW
from tests.project_files import write_project

SECRET = "tracked-dispatch-secret"
RULES = """
rules:
  - id: welcome
    send:
      email:
        variants: {a: note_a, b: note_b}
"""


def part(name: str) -> tuple[str, str, str]:
    return (
        f"{name} for {{{{ user.id }}}}",
        "Read https://docs.example/guide. Unsubscribe: {{ unsubscribe_url }}",
        "<html><body><a href='https://docs.example/guide'>Guide</a>"
        "<a href='{{ unsubscribe_url }}'>Unsubscribe</a></body></html>",
    )


def test_a_tracked_tick_sends_signed_links_and_a_pixel(store: Store, tmp_path: Path) -> None:
    write_project(tmp_path, RULES, {"note_a": part("A"), "note_b": part("B")})
    config = Config.model_validate(
        {
            "base_dir": tmp_path,
            "api": {"public_url": "https://api.example", "secret_key": SECRET},
            "mail": {"from": "T <t@x.io>", "tracking": {"opens": True, "clicks": True}},
        }
    )
    renderer = Renderer(tmp_path / "templates")
    rules = load_rules(
        tmp_path / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    transport = RecordingTransport()
    runner = Runner(store=store, rules=rules, renderer=renderer, transport=transport, config=config)
    store.people.upsert_users(
        [UserUpsert("u1", {}, email="u1@x.io", signed_up_at=NOW - timedelta(minutes=1))], NOW
    )
    runner.tick(NOW)
    (row,) = store.reads.deliveries()
    (message,) = transport.messages
    assert row["status"] == "sent"
    assert str(message["Subject"]).startswith(row["variant"].upper())
    html_part = message.get_body(("html",))
    text_part = message.get_body(("plain",))
    assert html_part is not None
    assert text_part is not None
    html, text = str(html_part.get_content()), str(text_part.get_content())
    assert "https://docs.example/guide" in text  # the text part is not tracked
    assert "href='https://docs.example/guide'" not in html
    click = html.split("https://api.example/t/c/", 1)[1].split("'", 1)[0]
    pixel = html.split("https://api.example/t/o/", 1)[1].split(".gif", 1)[0]
    clicked = read_tracking_token(SECRET, click, "click")
    opened = read_tracking_token(SECRET, pixel, "open")
    assert clicked.url == "https://docs.example/guide"
    for tracked in (clicked, opened):
        assert (tracked.rule_id, tracked.user_id) == ("welcome", "u1")
        assert tracked.message_id == row["message_id"] == message["Message-ID"]
    assert "https://api.example/unsubscribe/" in html
