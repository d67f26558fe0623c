"""`lifecycle run` as a real process: APScheduler ticks on its interval, emails reach the
outbox, and SIGTERM stops it cleanly. Every wait is bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.acceptance.conftest import make_project


def test_the_daemon_ticks_on_schedule_and_stops_on_sigterm(tmp_path: Path) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db")
    project.run("demo", "--users", "60", "--no-tour")
    env = {**os.environ, "LIFECYCLE_SCHEDULER__TICK": "1s"}
    script = Path(sys.executable).parent / "lifecycle"
    process = subprocess.Popen(
        [str(script), "--config", str(project.config_file), "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(project.outbox.glob("*.eml")):
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.2)
        assert list(project.outbox.glob("*.eml")), "no email reached the outbox within 30 s"
        time.sleep(1.5)  # at least one more tick, which must send nothing twice
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "tick at" in output
    rows = project.deliveries()
    assert len({(d["rule_id"], d["user_id"]) for d in rows}) == len(rows)
    sent = [d for d in rows if d["status"] == "sent" and d["email_template"]]
    assert len(list(project.outbox.glob("*.eml"))) == len(sent)
