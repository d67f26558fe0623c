"""A dispatcher run longer than `mail.retry.sending_lease`, next to a second replica that
recovers abandoned claims with the real time while the first one is still sending.

Each send moves a simulated clock forward, so the drain spans more than two leases; after
each of the first dispatcher's sends, a second dispatcher on the same database runs its
recovery and its own drain. Read at each claim and each send, the clock keeps the first
dispatcher's claims fresh: every email goes out once, none is sent by both, none is given up
as `unknown`. Stamped with one `now` for the whole run (the old behaviour), its claims look
abandoned to the other replica after one lease."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from engine.clock import Clock, ensure_utc
from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.rules.language import load_rules
from engine.runner import Runner
from engine.store import Store, UserUpsert
from tests.project_files import write_project

RULES = """
rules:
  - id: welcome
    send: {email: note}
"""

USERS = 6
LEASE = timedelta(minutes=10)
STEP = timedelta(minutes=4)  # a send's duration: more than LEASE / USERS, six span 24 minutes


class SimulatedClock:
    """The time as the dispatchers see it; only the transports move it on."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, by: timedelta) -> None:
        self.at += by


@dataclass
class SlowTransport(RecordingTransport):
    """Records each message; each send takes `step` of simulated time, then runs `after`
    (the second replica's turn) while the sending dispatcher is still mid-drain."""

    clock: SimulatedClock
    step: timedelta
    after: Callable[[], object] = field(default=lambda: None)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, message: EmailMessage) -> str:
        self.clock.advance(self.step)
        receipt = super().send(message)
        self.after()
        return receipt


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path, RULES)


def _runner(project: Path, store: Store, transport: SlowTransport, *, resend: bool) -> Runner:
    config = Config.model_validate(
        {
            "base_dir": project,
            "mail": {
                "from": "T <t@x.io>",
                "retry": {"sending_lease": "10m", "resend_unknown": resend},
            },
        }
    )
    assert config.mail.retry.sending_lease == LEASE
    renderer = Renderer(project / "templates")
    rules = load_rules(
        project / "rules", default_expires=timedelta(days=1), templates=renderer.names()
    )
    return Runner(
        store=store,
        rules=rules,
        renderer=renderer,
        transport=transport,
        config=config,
        random=lambda: 0.0,
    )


@dataclass(frozen=True)
class Drain:
    first: SlowTransport
    second: SlowTransport
    outcomes: Counter[str]
    statuses: dict[str, str]  # message id -> final status
    sent_at: list[datetime]
    elapsed: timedelta


def _long_drain(
    project: Path,
    store: Store,
    now: datetime,
    *,
    fixed: bool,
    resend: bool,
) -> Drain:
    """Evaluate at `now`, then drain with the first dispatcher (given `now` itself when
    `fixed`, else the clock) while the second one, a daemon replica on the clock, runs its
    recovery and drain after each of the first one's sends. The first dispatcher claims all
    the emails in one batch, so the second one only finds what the first one holds."""
    store.people.upsert_users(
        [
            UserUpsert(f"u{i}", {}, email=f"u{i}@example.com", signed_up_at=now)
            for i in range(USERS)
        ],
        now,
    )
    clock = SimulatedClock(now)
    second_transport = SlowTransport(clock=clock, step=STEP)
    second = _runner(project, Store(store.engine), second_transport, resend=resend)
    outcomes: Counter[str] = Counter()

    def second_replica() -> None:
        outcomes.update(second.dispatch(clock))

    first_transport = SlowTransport(clock=clock, step=STEP, after=second_replica)
    first = _runner(project, store, first_transport, resend=resend)
    report = first.tick(now, dispatch=False)
    assert report.written == {"welcome/pending": USERS}
    given: datetime | Clock = now if fixed else clock
    outcomes.update(first.dispatch(given))
    rows = store.reads.deliveries()
    return Drain(
        first_transport,
        second_transport,
        outcomes,
        statuses={row["message_id"]: row["status"] for row in rows},
        sent_at=[ensure_utc(row["sent_at"]) for row in rows if row["sent_at"] is not None],
        elapsed=clock.now() - now,
    )


def _sent_ids(transport: RecordingTransport) -> list[str]:
    return [str(message["Message-ID"]) for message in transport.messages]


@pytest.mark.parametrize("resend", [False, True], ids=["at-most-once", "resend-unknown"])
def test_a_drain_longer_than_the_lease_sends_each_email_once(
    project: Path, store: Store, now: datetime, resend: bool
) -> None:
    drain = _long_drain(project, store, now, fixed=False, resend=resend)
    assert drain.elapsed > 2 * LEASE  # the scenario: the drain outlasts two leases
    first, second = _sent_ids(drain.first), _sent_ids(drain.second)
    assert set(first) & set(second) == set()  # none sent by both replicas
    assert sorted(first + second) == sorted(drain.statuses)  # each one exactly once
    assert Counter(drain.statuses.values()) == {"sent": USERS}  # none `unknown`
    # Nothing was taken back from the live dispatcher: its claims were renewed in time.
    assert drain.outcomes == {"sent": USERS}
    # Each outcome is stamped with the time its send ended, not the time the drain began.
    assert sorted(drain.sent_at) == [now + STEP * (n + 1) for n in range(USERS)]


@pytest.mark.parametrize("resend", [False, True], ids=["at-most-once", "resend-unknown"])
def test_a_fixed_now_for_the_whole_drain_lets_another_replica_take_fresh_claims(
    project: Path, store: Store, now: datetime, resend: bool
) -> None:
    """The control: the same drain stamped with one `now` (the old behaviour) loses a claim
    to the other replica's recovery, so the test above does exercise the lease."""
    drain = _long_drain(project, store, now, fixed=True, resend=resend)
    first, second = _sent_ids(drain.first), _sent_ids(drain.second)
    if resend:  # a message the first replica was handing over is sent again by the second
        assert set(first) & set(second)
    else:  # one the first replica did hand over is given up as `unknown`
        assert "unknown" in drain.statuses.values()
