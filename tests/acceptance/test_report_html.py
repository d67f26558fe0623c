"""`lifecycle report all --html FILE`, opened in headless Chromium: the browser builds every
table and chart from the file alone (no network), and draws the page.

Needs Debian's `chromium` (/usr/bin/chromium). Outside CI the test is skipped with the reason
when it is missing; in CI (CI=true) a missing browser fails."""

from __future__ import annotations

import os
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.store import migrate
from tests.acceptance.conftest import make_project
from tests.acceptance.test_reports_cli import RULES
from tests.fixtures.report_population import load

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT = 120  # seconds: a cold start on a loaded CI machine is slow, a hang is not
FLAGS = (
    "--headless",
    "--no-sandbox",  # the tests run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"headless Chromium ({CHROMIUM}) is not installed: apt-get install -y chromium"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must run the HTML report test, but {reason}")
    pytest.skip(reason)


def browse(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [str(chromium()), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=True)


class Dom(HTMLParser):
    """Counts the elements the browser built and collects the headings' text."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.headings: list[str] = []
        self.cells: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag in ("h2", "h3", "td"):
            self._open = tag
            (self.headings if tag != "td" else self.cells).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open in ("h2", "h3"):
            self.headings[-1] += data
        elif self._open == "td":
            self.cells[-1] += data


@pytest.fixture
def page(tmp_path: Path) -> Path:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pack.yaml").write_text(RULES)
    project = make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules)
    with project.store() as store:
        migrate(store.engine)
        load(store)
    page = tmp_path / "report.html"
    project.run("report", "all", "--from", "2026-01-01", "--to", "2026-04-01", "--html", str(page))
    return page


def test_the_browser_renders_every_table_and_chart(page: Path, tmp_path: Path) -> None:
    result = browse(page, tmp_path / "profile", "--dump-dom")
    dom = Dom()
    dom.feed(result.stdout)
    # 7 reports: impact 1 table, questions 7, activation 4, pql 4, adoption 2, cohorts 2,
    # funnel 2.
    assert dom.counts.get("section") == 7
    assert dom.counts.get("table") == 22
    # A chart for every table that has one and rows: all but invite_before_workflow,
    # unverified_actions and cohort_summary.
    assert dom.counts.get("svg") == 19
    assert dom.counts.get("rect", 0) > 50
    assert "Impact of each rule (holdout test)" in dom.headings
    assert "Retention by signup cohort (share of the cohort active in month k)" in dom.headings
    assert "24 / 40 (60.0%)" in dom.cells  # the nudge rule's treated users, as people read it
    assert "sample too small" in dom.cells
    assert dom.counts.get("script") is None


def test_the_page_draws(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    browse(page, tmp_path / "profile", "--window-size=1280,2000", f"--screenshot={shot}")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert len(data) > 50_000  # a page of tables and charts, not a blank window


def test_a_missing_browser_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(f"{__name__}.CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the HTML report test"):
        chromium()
