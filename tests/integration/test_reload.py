"""The Reloader over a real engine: a valid change is swapped in and logged, an invalid one
is logged with `file:line` and the last good set keeps running, and a removed or disabled
rule is gone from the next tick."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from engine.app.wiring import App, open_app
from engine.config import Config
from engine.daemon.reload import Reloader
from engine.delivery.testing import RecordingTransport
from engine.store import UserUpsert

RULES = """\
rules:
  - id: welcome
    send: {email: hello}
  - id: tour
    send: {guide: first_tour}
"""

NEW_RULE = """\
rules:
  - id: nudge
    when: {after: 1h}
    send: {email: hello}
"""


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "pack.yaml").write_text(RULES)
    hello = tmp_path / "templates" / "hello"
    hello.mkdir(parents=True)
    (hello / "subject.txt").write_text("Hi {{ user.first_name or 'there' }}")
    (hello / "body.txt").write_text("Hello\n\nUnsubscribe: {{ unsubscribe_url }}\n")
    (hello / "body.html").write_text("<p>Hello</p><a href='{{ unsubscribe_url }}'>stop</a>\n")
    config = Config.model_validate(
        {
            "base_dir": tmp_path,
            "database": {"url": f"sqlite:///{tmp_path / 'lifecycle.db'}"},
            "mail": {"from": "Team <team@example.com>", "quiet_hours": None},
        }
    )
    app = open_app(config, transport=RecordingTransport())
    yield app
    app.store.engine.dispose()


def planned_rules(app: App, now: datetime) -> set[str]:
    return {p.rule_id for batch in app.runner.plan(now) for p in batch}


def test_a_valid_change_is_swapped_in_and_logged(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = Reloader(app.runner, app.config)
    rules_dir = app.config.rules_dir
    (rules_dir / "pack.yaml").write_text(
        RULES.replace("send: {email: hello}", "priority: 3\n    send: {email: hello}").replace(
            "  - id: tour\n    send: {guide: first_tour}\n", ""
        )
    )
    (rules_dir / "more.yaml").write_text(NEW_RULE)
    with caplog.at_level(logging.INFO, logger="lifecycle.reload"):
        diff = reloader.reload("test")
    assert diff is not None
    assert (diff.added, diff.removed, diff.modified) == (("nudge",), ("tour",), ("welcome",))
    assert {r.id for r in app.runner.rules.rules} == {"welcome", "nudge"}
    assert app.runner.rules.get("welcome").priority == 3
    assert "added nudge; removed tour; modified welcome" in caplog.text


def test_an_invalid_change_keeps_the_last_good_set(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = Reloader(app.runner, app.config)
    before, renderer = app.runner.rules, app.runner.renderer
    (app.config.rules_dir / "more.yaml").write_text(NEW_RULE + "    audiance: {}\n")
    with caplog.at_level(logging.INFO, logger="lifecycle.reload"):
        assert reloader.reload("test") is None
    assert app.runner.rules is before
    assert app.runner.renderer is renderer
    assert "rejected" in caplog.text
    assert "more.yaml:5: rule 'nudge': unknown key 'audiance'" in caplog.text


def test_a_template_that_fails_on_the_sample_users_keeps_the_last_good_set(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    reloader = Reloader(app.runner, app.config)
    before = app.runner.rules
    hello = app.config.templates_dir / "hello"
    (hello / "subject.txt").write_text("Hi\n{{ user.traits.plan.upper() }}")
    with caplog.at_level(logging.INFO, logger="lifecycle.reload"):
        assert reloader.reload("test") is None
    assert app.runner.rules is before
    assert "hello/subject.txt:2" in caplog.text
    # The running renderer is a snapshot: the unvalidated edit does not reach it.
    rendered = app.runner.renderer.render("hello", _context(app))
    assert rendered.subject == "Hi there"


def _context(app: App) -> dict[str, object]:
    return {"user": {"first_name": None}, "unsubscribe_url": "https://example.com/u"}


def test_a_removed_or_disabled_rule_is_gone_from_the_next_tick(app: App, now: datetime) -> None:
    def signup(user_id: str, at: datetime) -> None:
        app.store.people.upsert_users(
            [UserUpsert(user_id, {}, email=f"{user_id}@example.com", signed_up_at=at)], at
        )

    signup("u1", now)
    reloader = Reloader(app.runner, app.config)
    assert planned_rules(app, now) == {"welcome", "tour"}
    app.runner.tick(now)
    without_welcome = RULES.replace("  - id: welcome\n    send: {email: hello}\n", "")
    disabled_welcome = RULES.replace("  - id: welcome\n", "  - id: welcome\n    enabled: false\n")
    for step, text in enumerate((without_welcome, disabled_welcome), start=1):
        (app.config.rules_dir / "pack.yaml").write_text(text)
        assert reloader.reload("test") is not None
        later = now + timedelta(minutes=step)
        signup(f"u{step + 1}", later)
        assert planned_rules(app, later) == {"tour"}
        app.runner.tick(later)
    # The ledger keeps the history of the rule that went away.
    fired = {(d["rule_id"], d["user_id"]) for d in app.store.reads.deliveries()}
    assert fired == {("welcome", "u1"), ("tour", "u1"), ("tour", "u2"), ("tour", "u3")}


def test_the_watcher_reloads_on_a_file_change(app: App) -> None:
    reloader = Reloader(app.runner, app.config)
    reloader.start(debounce_ms=50)
    try:
        time.sleep(0.3)  # let the watcher settle before the edit
        (app.config.rules_dir / "more.yaml").write_text(NEW_RULE)
        deadline = time.monotonic() + 20
        while "nudge" not in {r.id for r in app.runner.rules.rules}:
            assert time.monotonic() < deadline, "the watcher did not reload within 20 s"
            time.sleep(0.05)
    finally:
        reloader.stop()
