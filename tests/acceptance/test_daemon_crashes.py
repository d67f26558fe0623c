"""kill -9 and stop signals during dispatch, in real `lifecycle run` processes delivering to a
real SMTP server on loopback. After each crash a new daemon takes over; the server's inbox
shows no message twice and none lost, except the one documented `unknown` message that was
being handed over when the process died, which the ledger and the log report.

Every wait is bounded (fault_kit.WAIT); only loopback addresses."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.acceptance.conftest import Project
from tests.acceptance.fault_kit import (
    WAIT,
    check_exactly_once,
    due_project,
    ensure_dead,
    exit_code,
    kill,
    settled,
    start,
    statuses,
    stop,
)
from tests.smtp_server import SmtpServer

USERS = 12
HOLD = 120.0  # seconds the SMTP server holds a reply: longer than any test waits
LEASE = {"LIFECYCLE_MAIL__RETRY__SENDING_LEASE": "2s"}  # the next daemon judges it quickly
# One SMTP session: these tests count the one message in flight (several sessions, one in
# doubt each: tests/acceptance/test_daemon_crashes_sessions.py).
ONE_SESSION = {"LIFECYCLE_MAIL__SMTP__SESSIONS": "1"}


def settle_with_a_new_daemon(project: Project) -> str:
    """Start a daemon after the crash, let it send what is left, stop it; its output."""
    daemon = start(project, **LEASE)
    try:
        daemon.wait_for(lambda: settled(project), "every email sent or reported", WAIT)
        stop(daemon)
    finally:
        ensure_dead(daemon)
    return daemon.output


def test_kill_9_before_the_claim_loses_nothing(tmp_path: Path, smtp_server: SmtpServer) -> None:
    project = due_project(tmp_path, "sqlite:///lifecycle.db", smtp_server.port, USERS)
    # Dispatch an hour away: the daemon evaluates (the ledger holds `pending` rows) and
    # dies before any dispatcher claims one.
    daemon = start(project, LIFECYCLE_SCHEDULER__DISPATCH="1h")
    try:
        daemon.wait_for(lambda: statuses(project)["pending"] == USERS, "the pending rows", WAIT)
        kill(daemon)
    finally:
        ensure_dead(daemon)
    assert smtp_server.messages == []
    settle_with_a_new_daemon(project)
    rows = check_exactly_once(project, smtp_server)
    assert len(rows["sent"]) == USERS
    assert len(smtp_server.messages) == USERS


def test_kill_9_after_the_claim_reports_the_one_message_in_doubt(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = due_project(tmp_path, "sqlite:///lifecycle.db", smtp_server.port, USERS)
    smtp_server.hold_mail(HOLD)  # the dispatcher has claimed, connected and named a sender
    daemon = start(project, **ONE_SESSION)
    try:
        daemon.wait_for(lambda: smtp_server.mail_commands >= 1, "a conversation", WAIT)
        assert statuses(project)["sending"] == 1  # the rest of the batch is only claimed
        kill(daemon)
    finally:
        ensure_dead(daemon)
    smtp_server.hold_mail(0)
    output = settle_with_a_new_daemon(project)
    rows = check_exactly_once(project, smtp_server)
    # The server never accepted it, but nobody can know that: reported, never sent twice.
    (unknown,) = rows["unknown"]
    assert "may have gone out" in unknown["reason"]
    assert len(rows["sent"]) == USERS - 1
    assert "marked unknown" in output
    assert "queued again" in output  # the claimed rest of the batch went back to the queue


def test_kill_9_after_the_server_accepted_delivers_it_once(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = due_project(tmp_path, "sqlite:///lifecycle.db", smtp_server.port, USERS)
    smtp_server.hold_after_accept(HOLD)  # the server has it; the daemon waits for the 250
    daemon = start(project, **ONE_SESSION)
    try:
        daemon.wait_for(lambda: len(smtp_server.messages) == 1, "an accepted message", WAIT)
        kill(daemon)
    finally:
        ensure_dead(daemon)
    smtp_server.hold_after_accept(0)
    settle_with_a_new_daemon(project)
    rows = check_exactly_once(project, smtp_server)
    (unknown,) = rows["unknown"]
    assert unknown["message_id"] == str(smtp_server.messages[0].message["Message-ID"])
    assert len(rows["sent"]) == USERS - 1
    assert len(smtp_server.messages) == USERS  # every user got it, exactly once


def test_sigterm_mid_dispatch_finishes_the_send_in_flight_and_exits_0(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = due_project(tmp_path, "sqlite:///lifecycle.db", smtp_server.port, USERS)
    smtp_server.slow(0.5)
    daemon = start(project)
    try:
        daemon.wait_for(lambda: len(smtp_server.messages) >= 2, "two deliveries", WAIT)
        daemon.signal(signal.SIGTERM)
        assert exit_code(daemon) == 0, daemon.output
    finally:
        ensure_dead(daemon)
    counts = statuses(project)
    assert counts["sending"] == counts["claimed"] == 0, counts
    assert counts["sent"] == len(smtp_server.messages)
    assert counts["pending"] > 0  # it stopped early, and handed the rest back
    assert "handed back unsent" in daemon.output
    smtp_server.slow(0)
    settle_with_a_new_daemon(project)
    rows = check_exactly_once(project, smtp_server)
    assert len(rows["sent"]) == USERS


def test_a_second_signal_exits_at_once(tmp_path: Path, smtp_server: SmtpServer) -> None:
    project = due_project(tmp_path, "sqlite:///lifecycle.db", smtp_server.port, USERS)
    smtp_server.hold_after_accept(HOLD)
    daemon = start(project, LIFECYCLE_SCHEDULER__SHUTDOWN_GRACE="5m", **ONE_SESSION)
    try:
        daemon.wait_for(lambda: len(smtp_server.messages) == 1, "a send in flight", WAIT)
        daemon.signal(signal.SIGTERM)
        time.sleep(1)
        assert daemon.process.poll() is None  # waiting for the send, within its grace
        started = time.monotonic()
        daemon.signal(signal.SIGINT)
        assert exit_code(daemon) == 128 + signal.SIGINT
        assert time.monotonic() - started < 10
    finally:
        ensure_dead(daemon)
    assert "exiting at once" in daemon.output
    assert statuses(project)["sending"] == 1  # in doubt; the next daemon reports it


def test_the_grace_period_bounds_the_wait_for_a_hung_send(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = due_project(tmp_path, "sqlite:///lifecycle.db", smtp_server.port, USERS)
    smtp_server.hold_after_accept(HOLD)
    daemon = start(project, LIFECYCLE_SCHEDULER__SHUTDOWN_GRACE="2s", **ONE_SESSION)
    try:
        daemon.wait_for(lambda: len(smtp_server.messages) == 1, "a send in flight", WAIT)
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        assert exit_code(daemon) == 1
        assert time.monotonic() - started < 15
    finally:
        ensure_dead(daemon)
    assert "grace period" in daemon.output
    smtp_server.hold_after_accept(0)
    settle_with_a_new_daemon(project)
    rows = check_exactly_once(project, smtp_server)
    assert len(rows["unknown"]) == 1
    assert len(smtp_server.messages) == USERS
