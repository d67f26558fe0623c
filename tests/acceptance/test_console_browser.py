"""The web console in a real browser: headless Chromium, driven over the DevTools protocol,
logs in by typing into the form, then walks rules -> a rule's preview -> the user's timeline
-> deliveries -> reports on demo-like data, checking what a person sees on each page and
writing a screenshot of each under tests/artifacts/console/ (ignored by git).

Needs Debian's `chromium` (/usr/bin/chromium). Outside CI the test is skipped with the reason
when it is missing; in CI (CI=true) a missing browser fails."""

from __future__ import annotations

import os
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.http.server import running_server
from tests.acceptance import test_report_html
from tests.acceptance.cdp import Page, browser
from tests.integration.console_kit import OPERATOR, OPERATOR_PASSWORD, demo_console

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "console"


def chromium() -> Path:
    executable = test_report_html.CHROMIUM
    if executable.exists():
        return executable
    reason = f"headless Chromium ({executable}) is not installed: apt-get install -y chromium"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the console's browser test, but {reason}")
    pytest.skip(reason)


def _shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    data = page.screenshot(ARTIFACTS / f"{name}.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    # A page, not a blank window: as wide as the window (less its scrollbar), and tall.
    assert width >= 1000, (name, width)
    assert height >= 400, (name, height)


def test_a_person_walks_the_console(tmp_path: Path) -> None:
    executable = chromium()
    with (
        demo_console(tmp_path, f"sqlite:///{tmp_path / 'lifecycle.db'}", NOW) as console,
        running_server(console.http) as base,
        browser(executable, test_report_html.FLAGS, tmp_path / "profile") as page,
    ):
        page.goto(f"{base}/console/rules")
        assert 'id="username"' in page.text("main")  # sent to the login form first
        _shot(page, "0-login")
        page.type_into("#username", OPERATOR)
        page.type_into("#password", OPERATOR_PASSWORD)
        page.press_enter()

        rules = page.text("main")
        assert "<h1>Rules</h1>" in rules
        for rule in console.app.runner.rules.rules:
            assert f">{rule.id}</a>" in rules
        assert page.style("header", "background-color") == "rgb(31, 58, 95)"  # CSS loaded
        _shot(page, "1-rules")

        page.goto(base + page.attribute(f'a[href="/console/rules/{console.rule_id}"]', "href"))
        preview = page.text("main")
        assert f"<h1>{console.rule_id}</h1>" in preview
        assert 'id="subject"' in preview
        assert 'sandbox=""' in preview
        assert page.text("#text-part").strip()
        _shot(page, "2-preview")

        page.goto(base + page.attribute("#preview h2 a", "href"))
        timeline = page.text("main")
        assert f"<h1>User {console.firing_user}</h1>" in timeline
        assert 'id="explain"' in timeline
        assert "<details" in timeline
        _shot(page, "3-user")

        page.goto(base + page.attribute('header nav a[href="/console/deliveries"]', "href"))
        first = page.text("#deliveries tbody tr")
        assert "status unknown" in first or "status failed" in first
        _shot(page, "4-deliveries")

        page.goto(base + page.attribute('header nav a[href="/console/reports"]', "href"))
        reports = page.text("main")
        assert "Impact per rule" in reports
        _shot(page, "5-reports")

        page.goto(f"{base}/console/users/{console.suppressed_user}")
        assert ">Lift</button>" in page.text("#suppressions")
        _shot(page, "6-suppressed-user")

    # The pages ran under their Content-Security-Policy: nothing was refused.
    refused = [line for line in page.logs if "Content Security Policy" in line]
    assert refused == []


def test_a_missing_browser_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(test_report_html, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the console's browser test"):
        chromium()
