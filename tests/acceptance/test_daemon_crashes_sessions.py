"""kill -9 of a `lifecycle run` dispatching over several SMTP sessions at once, to a real SMTP
server on loopback: each message is recorded sent, or left in doubt (at most one per session,
then reported `unknown`), and none is ever sent twice; the next daemon sends the rest.

Every wait is bounded (fault_kit.WAIT); only loopback addresses."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.conftest import Project
from tests.acceptance.fault_kit import (
    WAIT,
    check_exactly_once,
    due_project,
    ensure_dead,
    inbox,
    kill,
    settled,
    start,
    statuses,
    stop,
)
from tests.smtp_server import SmtpServer

SESSIONS = 3
PARALLEL = {"LIFECYCLE_MAIL__SMTP__SESSIONS": str(SESSIONS)}
LEASE = {"LIFECYCLE_MAIL__RETRY__SENDING_LEASE": "2s"}  # the next daemon judges it quickly
HOLD = 120.0  # seconds the SMTP server holds a reply: longer than any test waits


def settle_with_a_new_daemon(project: Project) -> None:
    daemon = start(project, **PARALLEL, **LEASE)
    try:
        daemon.wait_for(lambda: settled(project), "every email sent or reported", WAIT)
        stop(daemon)
    finally:
        ensure_dead(daemon)


def in_doubt_at_most_one_per_session(project: Project, server: SmtpServer) -> set[str]:
    """Right after the crash: what the server received is recorded `sent` or still
    `sending` (in doubt), at most one per session; what is `sent` was received. Returns the
    Message-IDs in doubt."""
    rows = project.deliveries()
    sending = {row["message_id"] for row in rows if row["status"] == "sending"}
    sent = {row["message_id"] for row in rows if row["status"] == "sent"}
    received = set(inbox(server))
    assert len(sending) <= SESSIONS, f"{len(sending)} messages in doubt over {SESSIONS} sessions"
    assert received <= sent | sending, (
        f"received, yet neither sent nor sending: {received - sent - sending}"
    )
    assert sent <= received, f"marked sent but never received: {sent - received}"
    return sending


def test_kill_9_while_every_session_waits_for_its_250_reports_each_once(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    users = 12
    project = due_project(tmp_path, "sqlite:///lifecycle.db", smtp_server.port, users)
    smtp_server.hold_after_accept(HOLD)  # each session's first message: accepted, unanswered
    daemon = start(project, **PARALLEL)
    try:
        daemon.wait_for(
            lambda: len(smtp_server.messages) == SESSIONS, "a message on every session", WAIT
        )
        kill(daemon)
    finally:
        ensure_dead(daemon)
    held = {str(m.message["Message-ID"]) for m in smtp_server.messages}
    assert in_doubt_at_most_one_per_session(project, smtp_server) == held
    assert statuses(project)["sending"] == SESSIONS  # one in doubt per session, no more
    smtp_server.hold_after_accept(0)
    settle_with_a_new_daemon(project)
    rows = check_exactly_once(project, smtp_server)
    assert {row["message_id"] for row in rows["unknown"]} == held  # reported, never resent
    assert len(rows["sent"]) == users - SESSIONS
    assert len(smtp_server.messages) == users  # every user got it, exactly once


def test_kill_9_mid_stream_leaves_at_most_one_message_in_doubt_per_session(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    users = 40
    project = due_project(tmp_path, "sqlite:///lifecycle.db", smtp_server.port, users)
    smtp_server.slow(0.05)  # every session busy: sends in flight when the kill comes
    daemon = start(project, **PARALLEL)
    try:
        daemon.wait_for(lambda: len(smtp_server.messages) >= 10, "ten deliveries", WAIT)
        kill(daemon)
    finally:
        ensure_dead(daemon)
    assert len(smtp_server.messages) < users  # killed mid-stream, not after the end
    doubt = in_doubt_at_most_one_per_session(project, smtp_server)
    smtp_server.slow(0)
    settle_with_a_new_daemon(project)
    rows = check_exactly_once(project, smtp_server)
    assert {row["message_id"] for row in rows.get("unknown", [])} == doubt
    # Everybody else got the message exactly once (check_exactly_once: never twice).
    assert len(rows["sent"]) == users - len(doubt)
    delivered = set(inbox(smtp_server))
    assert {row["message_id"] for row in rows["sent"]} <= delivered
