"""Several `lifecycle run` replicas on one PostgreSQL database, as real processes: one replica
evaluates a rule at a time (leases) and a dead one's rules pass on within a lease period;
with random kill -9s and restarts, every (rule, user) reaches the real SMTP server once and
every guide flag exists once. Every wait is bounded; only loopback addresses."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import SmtpConfig
from engine.store import connect
from tests.acceptance.fault_kit import (
    WAIT,
    check_exactly_once,
    due_project,
    ensure_dead,
    kill,
    settled,
    start,
    statuses,
    stop,
)
from tests.acceptance.probed_daemon import ProbedDaemon
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
def daemons() -> Iterator[list[ProbedDaemon]]:
    """Every daemon a test starts; whatever is left running is killed at the end."""
    started: list[ProbedDaemon] = []
    yield started
    for daemon in started:
        ensure_dead(daemon)


def evaluated(daemon: ProbedDaemon, rules: int) -> bool:
    return f"evaluated {rules} rules" in daemon.output


def test_one_replica_evaluates_and_a_dead_ones_rules_pass_on(
    tmp_path: Path, database: str, smtp_server: SmtpServer, daemons: list[ProbedDaemon]
) -> None:
    project = due_project(tmp_path, database, smtp_server.port, users=5)
    first = start(project)
    daemons.append(first)
    first.wait_for(lambda: evaluated(first, 1), "the first replica evaluating", WAIT)
    second = start(project)
    daemons.append(second)
    second.wait_for(lambda: "1 held by other replicas" in second.output, "a second replica", WAIT)
    ticks = second.output.count("tick at")
    second.wait_for(lambda: second.output.count("tick at") >= ticks + 3, "three more ticks", WAIT)
    assert not evaluated(second, 1)
    kill(first)
    killed = time.monotonic()
    second.wait_for(lambda: evaluated(second, 1), "the takeover", WAIT)
    assert time.monotonic() - killed < 3 + 1 + 5  # lease + one tick + slack for a busy machine
    stop(second)


def test_a_clean_stop_hands_the_rules_over_at_once(
    tmp_path: Path, database: str, smtp_server: SmtpServer, daemons: list[ProbedDaemon]
) -> None:
    project = due_project(tmp_path, database, smtp_server.port, users=5)
    # Leases of a minute: a takeover within seconds can only come from the release.
    minute = {"LIFECYCLE_SCHEDULER__LEASE": "1m"}
    first = start(project, **minute)
    daemons.append(first)
    first.wait_for(lambda: evaluated(first, 1), "the first replica evaluating", WAIT)
    second = start(project, **minute)
    daemons.append(second)
    second.wait_for(lambda: "1 held by other replicas" in second.output, "a second replica", WAIT)
    stop(first)
    second.wait_for(lambda: evaluated(second, 1), "the takeover", 15)
    stop(second)


def test_three_replicas_with_random_kills_deliver_each_email_once(
    tmp_path: Path, database: str, smtp_server: SmtpServer, daemons: list[ProbedDaemon]
) -> None:
    users = 240
    project = due_project(tmp_path, database, smtp_server.port, users)
    smtp_server.slow(0.05)  # long enough that kills land mid-dispatch
    chance = random.Random(20261123)
    replicas = [start(project) for _ in range(3)]
    daemons.extend(replicas)
    replicas[0].wait_for(lambda: statuses(project).total() == users, "the evaluation", WAIT)
    kills = 0
    deadline = time.monotonic() + WAIT
    for _ in range(8):  # bounded in count and in time
        if time.monotonic() > deadline or settled(project):
            break
        time.sleep(chance.uniform(1.0, 2.5))
        victim = chance.randrange(len(replicas))
        if chance.random() < 0.75:
            kill(replicas[victim])
            kills += 1
        else:  # a clean stop now and then: a deploy rolling through
            stop(replicas[victim])
        replicas[victim] = start(project)
        daemons.append(replicas[victim])
    assert kills > 0
    # Claims of the killed replicas return after mail.retry.sending_lease (10 s here).
    replicas[0].wait_for(lambda: settled(project), "every email sent or reported", WAIT * 2)
    for replica in replicas:
        stop(replica)
    check_exactly_once(project, smtp_server)
    counts = statuses(project)
    assert counts["sent"] + counts["unknown"] == users, counts
    # One message can be in doubt per kill and SMTP session: the one each session was
    # handing over (or had handed over, its outcome not yet written) when it died.
    assert counts["unknown"] <= kills * SmtpConfig().sessions, counts
    print(f"{kills} kills: {dict(counts)}; {len(smtp_server.messages)} received")
    assert len(smtp_server.messages) >= users - counts["unknown"]
    assert len({(row["rule_id"], row["user_id"]) for row in project.deliveries()}) == users
