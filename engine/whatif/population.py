"""A deterministic synthetic Airtouch population: personas, organic and invited signups into
workspaces (accounts; `group_calls` gives the call that names each and its plan), and the playbook's
events spread over the past days. The same seed and `now` give the same data."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.store import AccountUpsert, EventRecord, UserUpsert

PERSONAS = (
    ("data_engineer", 0.40),
    ("analyst", 0.20),
    ("sales", 0.15),
    ("marketing", 0.15),
    ("other", 0.10),
)
FIRST = (
    "Ana",
    "Ben",
    "Chloé",
    "Dae-jung",
    "Elif",
    "Farah",
    "Gustavo",
    "Hana",
    "Ines",
    "Jonas",
    "Kwame",
    "Lucía",
    "Min-ji",
    "Nikhil",
    "Olga",
    "Pablo",
    "Qing",
    "Rosa",
    "Sven",
    "Tomás",
    "Uma",
    "Valentina",
    "Wei",
    "Ximena",
    "Yusuf",
    "Zoe",
)
LAST = (
    "Alvarez",
    "Brown",
    "Choi",
    "Dubois",
    "Eriksen",
    "Fernández",
    "García",
    "Han",
    "Ito",
    "Jensen",
    "Kim",
    "López",
    "Müller",
    "Nakamura",
    "Okafor",
    "Park",
    "Rossi",
    "Silva",
)
COMPANIES = (
    "northwind",
    "acme-analytics",
    "bluefin",
    "cobalt-labs",
    "datadune",
    "evergreen",
    "fjord-io",
    "gridline",
    "harbor",
    "ionic-retail",
    "juniper-health",
    "kestrel",
)
TIMEZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "Europe/Madrid",
    "Europe/London",
    "Asia/Seoul",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Australia/Sydney",
)
PLANS = (("trial", 0.6), ("free", 0.3), ("team", 0.1))


@dataclass
class _Accounts:
    """Accounts in creation order (a list, so that picking one stays O(1)) and members."""

    order: list[str] = field(default_factory=list)
    members: dict[str, list[str]] = field(default_factory=dict)

    def add(self, account_id: str, user_id: str) -> None:
        if account_id not in self.members:
            self.order.append(account_id)
            self.members[account_id] = []
        self.members[account_id].append(user_id)


@dataclass
class Population:
    users: list[UserUpsert] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)


def generate(n: int, *, seed: int, now: datetime, days: int = 7) -> Population:
    rng = random.Random(seed)
    now = now.replace(second=0, microsecond=0)
    population = Population()
    accounts = _Accounts()
    signups = sorted(now - timedelta(seconds=rng.uniform(0, days * 86400)) for _ in range(n))
    for index, signed_up_at in enumerate(signups):
        user = _user(rng, index, signed_up_at.replace(microsecond=0), accounts, seed)
        population.users.append(user)
        population.events.extend(_events(rng, user, now, seed))
    return population


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted])[0]


def _user(
    rng: random.Random,
    index: int,
    signed_up_at: datetime,
    accounts: _Accounts,
    seed: int,
) -> UserUpsert:
    user_id = f"u{seed}-{index:05d}"
    invited = bool(accounts.order) and rng.random() < 0.35
    if invited:
        account_id = rng.choice(accounts.order)
        invited_by = rng.choice(accounts.members[account_id])
    else:
        account_id, invited_by = f"acct-{seed}-{len(accounts.order):04d}", None
    accounts.add(account_id, user_id)
    first, last = rng.choice(FIRST), rng.choice(LAST)
    company = COMPANIES[sum(map(ord, account_id)) % len(COMPANIES)]  # shared by an account
    return UserUpsert(
        id=user_id,
        email=f"{_ascii(first)}.{_ascii(last)}.{index}@{company}.example".lower(),
        persona=_pick(rng, PERSONAS),
        signup_source="invited" if invited else "organic",
        signed_up_at=signed_up_at,
        timezone=rng.choice(TIMEZONES),
        account_id=account_id,
        invited_by=invited_by,
        traits={
            "first_name": first,
            "last_name": last,
            "company": company.title(),
            "plan": _pick(rng, PLANS),
        },
    )


def group_calls(users: Sequence[UserUpsert]) -> list[AccountUpsert]:
    """The group call of each workspace an organic signup created: the founder's company and
    plan (account rules, such as the trial-account nudge, read these). Derived, not drawn:
    the users and events stay what they were before workspaces had traits (the bench streams
    the same users and adds group calls of its own)."""
    return [
        AccountUpsert(
            user.account_id, {"name": user.traits["company"], "plan": user.traits["plan"]}
        )
        for user in users
        if user.signup_source == "organic" and user.account_id is not None
    ]


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded if ch.isalnum())


def _events(rng: random.Random, user: UserUpsert, now: datetime, seed: int) -> list[EventRecord]:
    assert user.signed_up_at is not None
    start, out = user.signed_up_at, list[EventRecord]()
    core = user.persona == "data_engineer"

    def add(name: str, at: datetime, **properties: object) -> datetime:
        if at <= now:
            out.append(
                EventRecord(
                    user.id,
                    name,
                    at.replace(microsecond=0),
                    dict(properties),
                    f"demo-{seed}-{user.id}-{len(out)}",
                )
            )
        return at

    def later(base: datetime, mean_hours: float) -> datetime:
        return base + timedelta(hours=rng.expovariate(1 / mean_hours))

    if rng.random() < 0.75:
        add("email_verified", later(start, 3))
    connect_p = {"data_engineer": 0.6, "analyst": 0.3}.get(user.persona or "", 0.12)
    if rng.random() < connect_p:
        connected = add(
            "connection_created",
            later(start, 14),
            kind=rng.choice(("postgres", "snowflake", "bigquery", "salesforce", "hubspot")),
        )
        if rng.random() < 0.7:
            direction = "ingest" if rng.random() < 0.65 else "egress"
            started = add("workflow_started", later(connected, 5), direction=direction)
            if rng.random() < (0.5 if core else 0.35):
                saved = add("workflow_saved", later(started, 0.5), direction=direction)
                for _ in range(rng.randint(0, 4)):
                    saved = add("workflow_run", later(saved, 8), direction=direction)
    elif core and rng.random() < 0.25:
        add("workflow_started", later(start, 6), direction=rng.choice(("ingest", "egress")))
    if rng.random() < (0.45 if user.persona in ("sales", "marketing") else 0.12):
        add("invite_sent", later(start, 8))
    for _ in range(rng.randint(1, 5)):
        add("login", later(start, 30))
    return out
