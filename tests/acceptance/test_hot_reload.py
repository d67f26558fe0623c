"""Hot reload in a real `lifecycle run --no-api` process: a valid rule edit is swapped in and
logged, an invalid one is logged with `file:line` while the daemon keeps ticking on the last
good rules, and SIGTERM still exits 0. Every wait is bounded; no network at all."""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.acceptance.conftest import make_project
from tests.acceptance.test_daemon import start
from tests.conftest import ROOT

WAIT = 20.0

EXTRA = """\
rules:
  - id: hot-reloaded-welcome
    description: Added while the daemon runs
    send: {email: welcome_explorer}
"""

BROKEN = """\
rules:
  - id: broken-rule
    audiance: {persona: analyst}
    send: {email: welcome_explorer}
"""


class Output:
    """The daemon's output, read line by line in the background so waits can poll it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def ticks(self) -> int:
        return self.text.count("tick at")

    def wait_for(self, condition: str | None, what: str, *, ticks_after: int = 0) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if (condition is None or condition in self.text) and self.ticks() >= ticks_after:
                return
            assert self.process.poll() is None, self.text
            time.sleep(0.1)
        raise AssertionError(f"{what} did not happen within {WAIT} s:\n{self.text}")


def test_rules_reload_while_the_daemon_runs(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    project = make_project(tmp_path, "sqlite:///lifecycle.db", rules=rules)
    process = start(project, "run", "--no-api", LIFECYCLE_SCHEDULER__TICK="1s")
    output = Output(process)
    try:
        output.wait_for("tick at", "the first tick")

        (rules / "extra.yaml").write_text(EXTRA)
        process.send_signal(signal.SIGHUP)  # the watcher may get there first; either will do
        output.wait_for("added hot-reloaded-welcome", "the reload of a valid rule")

        (rules / "broken.yaml").write_text(BROKEN)
        process.send_signal(signal.SIGHUP)
        output.wait_for("rejected", "the rejection of an invalid rule")
        assert "broken.yaml:3: rule 'broken-rule': unknown key 'audiance'" in output.text
        output.wait_for(None, "ticks after the rejection", ticks_after=output.ticks() + 2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=WAIT)
        output.thread.join(timeout=WAIT)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == 0, output.text
    assert "Traceback" not in output.text
