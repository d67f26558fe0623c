"""One `lifecycle run` per SQLite file, as two real processes; and the daemon's logs are JSON
lines by default. Every wait is bounded."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.acceptance.conftest import make_project
from tests.acceptance.test_daemon import start, stop, wait_for


def test_a_second_daemon_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db", mail={"quiet_hours": None})
    project.run("demo", "--users", "30", "--no-tour")
    lock = tmp_path / "lifecycle.db.lock"
    first = start(project, "run", "--no-api", LIFECYCLE_SCHEDULER__TICK="1s")
    try:
        # The first has the lock once its pid is in the lock file.
        wait_for(lambda: lock.is_file() and lock.read_text().strip().isdigit(), first, "lock")
        second = start(project, "run", "--no-api", LIFECYCLE_SCHEDULER__TICK="1s")
        try:
            output, _ = second.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            second.kill()
            second.communicate(timeout=10)
            raise AssertionError("the second daemon did not refuse to start") from None
        assert second.returncode != 0
        message = " ".join(output.split())  # rich wraps long lines
        assert "already using the database" in message
        assert str(tmp_path / "lifecycle.db") in message
        assert str(lock) in message
        assert f"process {first.pid}" in message
        assert first.poll() is None  # the first goes on ticking
    finally:
        output = stop(first)
    # JSON lines by default: every log line is an object with the agreed fields.
    entries = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert any(e["message"].startswith("tick at") for e in entries), output
    assert all({"time", "level", "logger", "message"} <= e.keys() for e in entries)


def test_the_lock_is_released_when_the_daemon_stops(tmp_path: Path) -> None:
    project = make_project(tmp_path, "sqlite:///lifecycle.db")
    lock = tmp_path / "lifecycle.db.lock"
    for _ in range(2):  # the second start would be refused if the first kept the lock
        process = start(project, "--log-format", "text", "run", "--no-api")
        wait_for(lambda: lock.is_file() and lock.read_text().strip().isdigit(), process, "lock")
        # The lock comes a moment before the SIGTERM handler: give the daemon that moment.
        time.sleep(1)
        output = stop(process)
        assert "INFO lifecycle.daemon: lifecycle daemon:" in output
        lock.write_text("")  # so that the next wait sees the next holder's pid
