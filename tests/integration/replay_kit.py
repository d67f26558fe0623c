"""A small rule pack, its templates and a recorded population spread over three days, shared
by the replay, explain and simulation tests."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.config import Config
from engine.delivery.render import Renderer
from engine.delivery.testing import RecordingTransport
from engine.rules.language import load_rules
from engine.runner import Runner
from engine.store import EventRecord, Store, UserUpsert
from engine.whatif.replay import Period

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
DAYS = 3

RULES = """
rules:
  - id: welcome
    priority: 10
    when: {expires: 12h}
    send: {email: hello, guide: tour}
    holdout: 30%
  - id: nudge
    audience: {persona: data_engineer}
    when: {after: 20h, not_done: [connected], expires: 1d}
    send: {email: hello}
    goal: {event: connected, within: 2d}
  - id: next-step
    audience: {traits: {plan: {in: [free, trial]}}}
    when: {since: connected, where: {kind: warehouse}, done: [verified], after: 1h, expires: 2d}
    send: {email: hello}
  - id: abandoned
    when: {since: started, after: 2h, not_done: [saved], expires: 1d}
    send: {guide: workflow_tour}
  - id: tips
    priority: -5
    when: {after: 2h, expires: 6h}
    send: {email: hello}
"""

TEMPLATES = {"hello": "Hello {{ user.first_name or 'there' }}"}


def write_pack(directory: Path, rules: str = RULES) -> Path:
    """A project directory with `rules/pack.yaml` and the templates; returns `rules/`."""
    (directory / "rules").mkdir(parents=True, exist_ok=True)
    (directory / "rules" / "pack.yaml").write_text(rules)
    for name, subject in TEMPLATES.items():
        template = directory / "templates" / name
        template.mkdir(parents=True, exist_ok=True)
        (template / "subject.txt").write_text(subject)
        (template / "body.txt").write_text("Hi {{ unsubscribe_url }}")
        (template / "body.html").write_text("<p>Hi {{ unsubscribe_url }}</p>")
    return directory / "rules"


def make_runner(directory: Path, store: Store, rules_dir: Path | None = None) -> Runner:
    """A runner as `engine.app` builds one, with quiet hours and a daily cap of two."""
    config = Config.model_validate(
        {
            "base_dir": directory,
            "mail": {
                "from": "Team <team@example.com>",
                "quiet_hours": {"start": "21:00", "end": "08:00"},
                "daily_cap": 2,
            },
        }
    )
    renderer = Renderer(directory / "templates")
    rules = load_rules(
        rules_dir or directory / "rules",
        default_expires=timedelta(days=1),
        templates=renderer.names(),
    )
    return Runner(
        store=store,
        rules=rules,
        renderer=renderer,
        transport=RecordingTransport(),
        config=config,
        random=lambda: 0.5,
    )


PERSONAS = ("data_engineer", "analyst", "sales")
ZONES = ("UTC", "Europe/Madrid", "America/New_York", "Asia/Seoul")
EVENTS = ("connected", "verified", "started", "saved")


def population(n: int = 40, seed: int = 3) -> tuple[list[UserUpsert], list[EventRecord]]:
    """Users signing up over the first two days, their events over the three days."""
    rng = random.Random(seed)
    users, events = [], []
    for index in range(n):
        user_id = f"u{index:02d}"
        signed_up = T0 + timedelta(minutes=rng.randrange(0, 2 * 24 * 60, 7))
        users.append(
            UserUpsert(
                id=user_id,
                traits={"plan": rng.choice(("free", "trial", "team")), "first_name": "Al"},
                email=None if index % 13 == 5 else f"{user_id}@example.com",
                persona=rng.choice(PERSONAS),
                signup_source="organic",
                signed_up_at=signed_up,
                timezone=rng.choice(ZONES),
            )
        )
        for number in range(rng.randint(0, 5)):
            at = signed_up + timedelta(minutes=rng.randrange(1, 36 * 60))
            properties: dict[str, Any] = {"kind": rng.choice(("warehouse", "crm"))}
            name = rng.choice(EVENTS)
            events.append(EventRecord(user_id, name, at, properties, f"{user_id}-{number}"))
    return users, events


# Users who unsubscribe while the daemon runs, and when (between two hourly ticks).
UNSUBSCRIBES = {"u03": T0 + timedelta(hours=20, minutes=30), "u08": T0 + timedelta(hours=40.5)}


def seed(store: Store) -> None:
    users, events = population()
    store.people.upsert_users(users, T0)
    store.people.insert_events(events, T0)


def run_daemon(
    directory: Path, store: Store, period: Period, unsubscribes: dict[str, datetime]
) -> None:
    """The real tick, dispatch included, at every step; users unsubscribe in between."""
    runner = make_runner(directory, store)
    for now in period.ticks():
        for user_id, at in unsubscribes.items():
            if now - period.step < at <= now:
                store.guides.unsubscribe(user_id, at)
        runner.tick(now)
