"""Several `lifecycle run` replicas on one PostgreSQL database, as real processes: one replica
evaluates a rule at a time (leases) and a dead one's rules pass on within a lease period;
with random kill -9s and restarts, every (rule, user) reaches the real SMTP server once and
every guide flag exists once. Every wait is bounded; only loopback addresses."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import connect
from tests.acceptance.fault_kit import (
    WAIT,
    Daemon,
    check_exactly_once,
    due_project,
    settled,
    statuses,
)
from tests.conftest import _truncate
from tests.smtp_server import SmtpServer

pytestmark = pytest.mark.postgres


@pytest.fixture
def database(pg_database: str) -> str:
    engine = connect(pg_database)
    _truncate(engine)
    engine.dispose()
    return pg_database


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Every daemon a test starts; whatever is left running is killed at the end."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.ensure_dead()


def evaluated(daemon: Daemon, rules: int) -> bool:
    return f"evaluated {rules} rules" in daemon.output


def test_one_replica_evaluates_and_a_dead_ones_rules_pass_on(
    tmp_path: Path, database: str, smtp_server: SmtpServer, daemons: list[Daemon]
) -> None:
    project = due_project(tmp_path, database, smtp_server.port, users=5)
    first = Daemon(project)
    daemons.append(first)
    first.wait_for(lambda: evaluated(first, 1), "the first replica evaluating")
    second = Daemon(project)
    daemons.append(second)
    second.wait_for(lambda: "1 held by other replicas" in second.output, "a second replica")
    ticks = second.output.count("tick at")
    second.wait_for(lambda: second.output.count("tick at") >= ticks + 3, "three more ticks")
    assert not evaluated(second, 1)
    first.kill()
    killed = time.monotonic()
    second.wait_for(lambda: evaluated(second, 1), "the takeover")
    assert time.monotonic() - killed < 3 + 1 + 5  # lease + one tick + slack for a busy machine
    second.stop()


def test_a_clean_stop_hands_the_rules_over_at_once(
    tmp_path: Path, database: str, smtp_server: SmtpServer, daemons: list[Daemon]
) -> None:
    project = due_project(tmp_path, database, smtp_server.port, users=5)
    # Leases of a minute: a takeover within seconds can only come from the release.
    minute = {"LIFECYCLE_SCHEDULER__LEASE": "1m"}
    first = Daemon(project, **minute)
    daemons.append(first)
    first.wait_for(lambda: evaluated(first, 1), "the first replica evaluating")
    second = Daemon(project, **minute)
    daemons.append(second)
    second.wait_for(lambda: "1 held by other replicas" in second.output, "a second replica")
    first.stop()
    second.wait_for(lambda: evaluated(second, 1), "the takeover", seconds=15)
    second.stop()


def test_three_replicas_with_random_kills_deliver_each_email_once(
    tmp_path: Path, database: str, smtp_server: SmtpServer, daemons: list[Daemon]
) -> None:
    users = 240
    project = due_project(tmp_path, database, smtp_server.port, users)
    smtp_server.slow(0.05)  # long enough that kills land mid-dispatch
    chance = random.Random(20261123)
    replicas = [Daemon(project) for _ in range(3)]
    daemons.extend(replicas)
    replicas[0].wait_for(lambda: statuses(project).total() == users, "the evaluation")
    kills = 0
    deadline = time.monotonic() + WAIT
    for _ in range(8):  # bounded in count and in time
        if time.monotonic() > deadline or settled(project):
            break
        time.sleep(chance.uniform(1.0, 2.5))
        victim = chance.randrange(len(replicas))
        if chance.random() < 0.75:
            replicas[victim].kill()
            kills += 1
        else:  # a clean stop now and then: a deploy rolling through
            replicas[victim].signal(signal.SIGTERM)
            assert replicas[victim].exit_code() == 0, replicas[victim].output
        replicas[victim] = Daemon(project)
        daemons.append(replicas[victim])
    assert kills > 0
    # Claims of the killed replicas return after mail.retry.sending_lease (10 s here).
    replicas[0].wait_for(lambda: settled(project), "every email sent or reported", WAIT * 2)
    for replica in replicas:
        replica.stop()
    check_exactly_once(project, smtp_server)
    counts = statuses(project)
    assert counts["sent"] + counts["unknown"] == users, counts
    # One message can be in doubt per kill: the one being handed over when it died.
    assert counts["unknown"] <= kills, counts
    print(f"{kills} kills: {dict(counts)}; {len(smtp_server.messages)} received")
    assert len(smtp_server.messages) >= users - counts["unknown"]
    assert len({(row["rule_id"], row["user_id"]) for row in project.deliveries()}) == users
