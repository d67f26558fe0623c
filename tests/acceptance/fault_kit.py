"""Fault tests' kit: a project whose users are all due now, `lifecycle run` processes
(probed_daemon) started, killed and stopped, and the exactly-once checks against a real SMTP
server's inbox."""

from __future__ import annotations

import json
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import Project, make_project
from tests.acceptance.probed_daemon import ProbedDaemon
from tests.smtp_server import SmtpServer

WAIT = 60.0  # seconds: the longest any single wait in these tests may take

WELCOME = """\
rules:
  - id: welcome-now
    description: Every new user, as soon as they sign up
    send:
      email: welcome_explorer
      guide: welcome_tour
"""

# Fast, so that a test runs in seconds; the leases are short so that dead replicas' work
# passes on quickly, but long enough that a live dispatcher never loses a claim.
FAST = {
    "LIFECYCLE_SCHEDULER__TICK": "1s",
    "LIFECYCLE_SCHEDULER__DISPATCH": "1s",
    "LIFECYCLE_SCHEDULER__LEASE": "3s",
}


def due_project(tmp_path: Path, database_url: str, smtp_port: int, users: int) -> Project:
    """A project with one rule (an email and a guide) that is due for `users` users now."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "welcome.yaml").write_text(WELCOME)
    project = make_project(
        tmp_path,
        database_url,
        rules=rules,
        mail={
            "transport": "smtp",
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none", "timeout": "5s"},
            "quiet_hours": None,
            "daily_cap": None,
            "retry": {"first_delay": "1s", "max_delay": "2s", "sending_lease": "10s"},
        },
    )
    signed_up = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    lines = [
        json.dumps(
            {
                "type": "identify",
                "userId": f"u{i:04d}",
                "messageId": f"id-u{i:04d}",
                "timestamp": signed_up,
                "traits": {"email": f"u{i:04d}@example.com", "createdAt": signed_up},
            }
        )
        for i in range(users)
    ]
    data = tmp_path / "users.jsonl"
    data.write_text("\n".join(lines) + "\n")
    project.run("ingest", str(data))
    return project


def start(project: Project, **env: str) -> ProbedDaemon:
    """A `lifecycle run --no-api` on the fast schedule; the caller makes sure it ends
    (`stop`, `kill`, or `ProbedDaemon.__exit__` in a fixture)."""
    environ: dict[str, Any] = {**FAST, **env}  # Any: ProbedDaemon's keywords include `port`
    return ProbedDaemon(project, "--no-api", **environ).__enter__()


def kill(daemon: ProbedDaemon) -> None:
    """kill -9, and wait for it."""
    daemon.signal(signal.SIGKILL)
    exit_code(daemon)


def exit_code(daemon: ProbedDaemon, seconds: float = WAIT) -> int:
    code = daemon.process.wait(timeout=seconds)
    daemon.__exit__(None, None, None)  # reads the rest of its output, closes the pipe
    return code


def stop(daemon: ProbedDaemon) -> None:
    """SIGTERM and a clean exit, once it handles signals (a SIGTERM while Python is still
    importing ends it the default way, by the signal)."""
    daemon.wait_for(lambda: "lifecycle daemon:" in daemon.output, "the daemon's start", WAIT)
    code = daemon.stop()
    assert code == 0, daemon.tail()


def statuses(project: Project) -> Counter[str]:
    return Counter(row["status"] for row in project.deliveries())


def settled(project: Project) -> bool:
    """Nothing left to send: every email is sent, failed or unknown."""
    return not set(statuses(project)) & {"pending", "claimed", "sending", "retrying"}


def inbox(server: SmtpServer) -> Counter[str]:
    return Counter(str(m.message["Message-ID"]) for m in server.messages)


def check_exactly_once(project: Project, server: SmtpServer) -> dict[str, Any]:
    """No message twice; every `sent` row arrived exactly once; `unknown` rows (the
    documented window: the process died while handing the message over) arrived at most
    once; every guide flag exists once. Returns the rows by status, for further checks."""
    received = inbox(server)
    twice = {message_id: n for message_id, n in received.items() if n > 1}
    assert not twice, f"delivered more than once: {twice}"
    rows = project.deliveries()
    by_status: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_status.setdefault(row["status"], []).append(row)
    sent = {row["message_id"] for row in by_status.get("sent", [])}
    missing = sent - set(received)
    assert not missing, f"marked sent but never received: {sorted(missing)}"
    known = sent | {row["message_id"] for row in by_status.get("unknown", [])}
    stray = set(received) - known
    assert not stray, f"received but not marked sent or unknown: {sorted(stray)}"
    flags = project.guide_flags()
    assert len(flags) == len({(f["guide_id"], f["user_id"]) for f in flags}) == len(rows)
    return by_status


def ensure_dead(daemon: ProbedDaemon) -> None:
    """For `finally:` blocks: kill it unless it already ended."""
    daemon.__exit__(None, None, None)
