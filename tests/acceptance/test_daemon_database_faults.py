"""The database restarted under a running `lifecycle run` (PostgreSQL): the daemon recovers
without being restarted itself.

The server is a private throwaway cluster (tests/private_postgres.py), never the machine's
shared one. It is crashed with `pg_ctl stop -m immediate` while the daemon runs, kept down
past the time a rule becomes due, and started again. Meanwhile the process stays up, /healthz
answers 200 and /readyz 503, and the failed ticks are logged as errors; afterwards /readyz is
200 again, the next ticks write and send what fell due during the outage, and the real SMTP
server receives every (rule, user) exactly once. Two variants: the crash lands in the middle
of a dispatch batch (the send in flight may end `unknown`, the rest of the batch goes out after
the restart, nothing twice), and SIGTERM while the database is still down exits 0.
Every wait is bounded; loopback only."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.config import SmtpConfig
from engine.store import UserUpsert
from tests.acceptance.conftest import Project, make_project
from tests.acceptance.probed_daemon import ProbedDaemon, free_port
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.postgres

NUDGE_AFTER = timedelta(seconds=15)  # the second rule is due this long after signup
TICK = "1s"
START = 90.0  # seconds for the daemon to come up (migrations on a cold server, a busy box)
SETTLE = 60.0  # seconds for what is due to be written and sent, at a tick a second
PROBE = 30.0  # seconds for /readyz to notice the database went away or came back
FAILED_TICKS = 2  # error records to see while the database is down (one per failed tick+)

RULES = f"""\
rules:
  - id: welcome
    description: At signup
    when: {{expires: 1d}}
    send: {{email: welcome_explorer}}
  - id: nudge
    description: A little later; for the second batch of users it falls due during the outage
    when: {{after: {int(NUDGE_AFTER.total_seconds())}s, expires: 1d}}
    send: {{email: welcome_explorer}}
"""
RULE_IDS = ("welcome", "nudge")


@pytest.fixture
def postgres() -> Iterator[PrivatePostgres]:
    with private_postgres() as server:
        yield server


def utcnow() -> datetime:
    return datetime.now(UTC)


def add_users(project: Project, prefix: str, count: int, signed_up_at: datetime) -> list[str]:
    ids = [f"{prefix}{n}" for n in range(count)]
    with project.store() as store:
        store.people.upsert_users(
            [
                UserUpsert(
                    id=user_id,
                    traits={"first_name": user_id.capitalize()},
                    email=f"{user_id}@example.com",
                    persona="analyst",
                    signup_source="organic",
                    signed_up_at=signed_up_at,
                )
                for user_id in ids
            ],
            utcnow(),
        )
    return ids


def sent_pairs(project: Project) -> set[tuple[str, str]]:
    with project.store() as store:
        return {(d["rule_id"], d["user_id"]) for d in store.reads.deliveries(status="sent")}


def pairs(rule_ids: Sequence[str], user_ids: Sequence[str]) -> set[tuple[str, str]]:
    return {(rule, user) for rule in rule_ids for user in user_ids}


def errors_logged(daemon: ProbedDaemon, since: int) -> int:
    """Error records (a failed tick, rule or job, by any logger) from line `since` on."""
    return sum(r.get("level") in ("ERROR", "CRITICAL") for r in daemon.records(since))


def smtp_project(
    tmp_path: Path, postgres: PrivatePostgres, smtp_server: SmtpServer, port: int
) -> Project:
    """RULES on a fresh database of the private server, sending to `smtp_server`, the API
    on `port`. The sending lease is far longer than any test: none may depend on it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "pack.yaml").write_text(RULES)
    return make_project(
        tmp_path,
        postgres.create_database("lifecycle"),
        rules=rules,
        mail={
            "transport": "smtp",
            "smtp": {
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "security": "none",
                "timeout": "5s",
            },
            "quiet_hours": None,
            "daily_cap": None,
            "retry": {"first_delay": "1s", "max_delay": "2s", "sending_lease": "10m"},
        },
        api={"host": "127.0.0.1", "port": port},
    )


def test_the_daemon_recovers_from_a_database_restart_without_a_restart(
    tmp_path: Path, postgres: PrivatePostgres, smtp_server: SmtpServer
) -> None:
    port = free_port()
    project = smtp_project(tmp_path, postgres, smtp_server, port)
    with ProbedDaemon(
        project, port=port, LIFECYCLE_SCHEDULER__TICK=TICK, LIFECYCLE_SCHEDULER__DISPATCH=TICK
    ) as daemon:
        daemon.wait_for(lambda: daemon.status("/readyz") == 200, "the daemon being ready", START)

        # Before the fault: a first batch gets both emails, a second one its welcome.
        early = add_users(project, "early", 3, utcnow() - timedelta(hours=1))
        daemon.wait_for(
            lambda: sent_pairs(project) >= pairs(RULE_IDS, early), "the first emails", SETTLE
        )
        signed_up = utcnow()
        late = add_users(project, "late", 3, signed_up)
        nudge_due = signed_up + NUDGE_AFTER
        daemon.wait_for(
            lambda: sent_pairs(project) >= pairs(["welcome"], late), "the welcomes", SETTLE
        )
        with project.store() as store:
            assert not store.reads.deliveries(rule_id="nudge", user_id=late[0]), "nudged too early"
            assert store.reads.status_counts() == {"sent": 9}, store.reads.status_counts()

        # The crash: the database goes away without a checkpoint, cutting every connection.
        mark = daemon.line_count()
        postgres.stop("immediate")
        assert utcnow() < nudge_due, "the server took too long to stop: the test proves nothing"
        daemon.wait_for(lambda: daemon.status("/readyz") == 503, "/readyz saying 503", PROBE)
        readiness = daemon.get("/readyz")
        assert readiness is not None
        assert readiness.json()["status"] == "unavailable"
        assert readiness.json()["reason"].startswith("database:")
        assert daemon.status("/healthz") == 200  # alive, only not ready
        assert daemon.status("/metrics") == 200
        daemon.wait_for(
            lambda: errors_logged(daemon, mark) >= FAILED_TICKS, "failed ticks logged", PROBE
        )
        # Down past the time the nudge falls due, and a couple of ticks more.
        daemon.wait_for(
            lambda: utcnow() > nudge_due + timedelta(seconds=2), "the nudge falling due", 60
        )
        assert daemon.alive()
        assert daemon.status("/readyz") == 503
        failures_while_down = errors_logged(daemon, mark)

        # The database is back; the daemon was never restarted.
        restarted = utcnow()
        postgres.start()
        daemon.wait_for(lambda: daemon.status("/readyz") == 200, "/readyz back at 200", START)
        ticks = daemon.metric("lifecycle_ticks_total")
        assert ticks is not None
        after = add_users(project, "after", 3, utcnow() - timedelta(hours=1))
        everyone = pairs(RULE_IDS, early + late + after)
        daemon.wait_for(lambda: sent_pairs(project) == everyone, "the catch-up sends", SETTLE)
        # A few more ticks, which must send nothing again.
        daemon.wait_for(
            lambda: (daemon.metric("lifecycle_ticks_total") or 0) >= ticks + 3,
            "three more ticks",
            SETTLE,
        )
        assert daemon.alive()
        code = daemon.stop()
        assert code == 0, daemon.tail()

    assert failures_while_down >= FAILED_TICKS
    with project.store() as store:
        rows = store.reads.deliveries()
    assert {(d["rule_id"], d["user_id"]) for d in rows} == everyone
    assert len(rows) == len(everyone)  # one ledger row per (rule, user)
    assert {d["status"] for d in rows} == {"sent"}  # nothing left sending, unknown, failed
    nudged_late = [d for d in rows if d["rule_id"] == "nudge" and d["user_id"] in late]
    # Written by the ticks after the restart (the tick's `now` is the row's created_at).
    assert all(d["created_at"] >= restarted for d in nudged_late), nudged_late
    received = Counter(str(m.message["Message-ID"]) for m in smtp_server.messages)
    assert set(received) == {d["message_id"] for d in rows}
    assert max(received.values()) == 1, received  # no message twice at the SMTP server


def test_sigterm_while_the_database_is_down_exits_0(
    tmp_path: Path, postgres: PrivatePostgres
) -> None:
    """The default pack; the database dies under the running daemon and stays down: the
    daemon stays up and not ready, and SIGTERM still stops it cleanly (exit code 0), though
    it cannot give its rule leases back."""
    port = free_port()
    project = make_project(
        tmp_path, postgres.create_database("lifecycle"), api={"host": "127.0.0.1", "port": port}
    )
    with ProbedDaemon(
        project, port=port, LIFECYCLE_SCHEDULER__TICK=TICK, LIFECYCLE_SCHEDULER__DISPATCH=TICK
    ) as daemon:
        daemon.wait_for(lambda: daemon.status("/readyz") == 200, "the daemon being ready", START)
        mark = daemon.line_count()
        postgres.stop("immediate")
        daemon.wait_for(lambda: daemon.status("/readyz") == 503, "/readyz saying 503", PROBE)
        daemon.wait_for(
            lambda: errors_logged(daemon, mark) >= FAILED_TICKS, "failed ticks logged", PROBE
        )
        assert daemon.status("/healthz") == 200
        code = daemon.stop()  # the database is still down
        assert code == 0, daemon.tail()


OUTAGE = 3.0  # seconds down: longer than a slow send, so the send in flight ends while down


def test_a_database_crash_mid_dispatch_loses_nothing_silently(
    tmp_path: Path, postgres: PrivatePostgres, smtp_server: SmtpServer
) -> None:
    """The database dies while a batch is being sent (the SMTP server is slow). The daemon
    keeps what it could not write (the message in flight was accepted; the rest of the batch
    was never sent) and writes it when the database is back: everything ends `sent`, at
    once rather than after the sending lease, and the SMTP server never gets one twice."""
    port = free_port()
    project = smtp_project(tmp_path, postgres, smtp_server, port)
    with ProbedDaemon(
        project, port=port, LIFECYCLE_SCHEDULER__TICK=TICK, LIFECYCLE_SCHEDULER__DISPATCH=TICK
    ) as daemon:
        daemon.wait_for(lambda: daemon.status("/readyz") == 200, "the daemon being ready", START)
        smtp_server.slow(0.7)  # each message takes a while: the crash lands mid-batch
        users = add_users(project, "user", 5, utcnow() - timedelta(hours=1))
        everyone = pairs(RULE_IDS, users)
        daemon.wait_for(lambda: len(smtp_server.messages) >= 2, "the batch under way", SETTLE)
        mark = daemon.line_count()
        postgres.stop("immediate")
        crashed = time.monotonic()
        received_before = len(smtp_server.messages)
        daemon.wait_for(lambda: errors_logged(daemon, mark) >= 1, "the failure logged", PROBE)
        assert daemon.status("/readyz") == 503
        time.sleep(max(0.0, crashed + OUTAGE - time.monotonic()))
        # The sends in flight (one per SMTP session) may have completed; nothing else went
        # out without a database.
        assert len(smtp_server.messages) <= received_before + SmtpConfig().sessions
        smtp_server.slow(0)
        postgres.start()
        daemon.wait_for(lambda: daemon.status("/readyz") == 200, "/readyz back at 200", START)

        def settled() -> bool:
            with project.store() as store:
                counts = store.reads.status_counts()
            return sum(counts.values()) == len(everyone) and set(counts) <= {"sent", "unknown"}

        # Well within the sending lease: nothing waits for it.
        daemon.wait_for(settled, "every delivery settled", SETTLE)
        assert daemon.stop() == 0, daemon.tail()

    with project.store() as store:
        rows = store.reads.deliveries()
    assert {(d["rule_id"], d["user_id"]) for d in rows} == everyone
    unknown = [d for d in rows if d["status"] == "unknown"]
    assert unknown == []  # the accepted message in flight was recorded once the database was back
    received = Counter(str(m.message["Message-ID"]) for m in smtp_server.messages)
    assert max(received.values()) == 1, received  # no message twice at the SMTP server
    sent_ids = {d["message_id"] for d in rows if d["status"] == "sent"}
    assert sent_ids == set(received)
    assert set(received) <= {d["message_id"] for d in rows}
