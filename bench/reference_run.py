"""The reference evaluator (engine.reference) looping over a sample of users, extrapolated
linearly to the whole population. Loading the users' states is not timed: that favours the
reference, which makes the engine's ratio against it conservative.

The sample takes whole accounts: with each sampled user come the other members of their
account, and the accounts' traits, so that account rules (audience.account, account items,
`since: account_created`, `once_per: account`) see what the engine sees."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from bench.databases import LedgerKeys, reset_ledger
from bench.dataset import NOW
from bench.timing import median, timed
from engine.app.wiring import App
from engine.model import World
from engine.rules.language import Rule
from engine.rules.reference import firings
from engine.sql.schema import accounts, users


@dataclass
class ReferenceFigures:
    population: int
    sample: int
    seconds: list[float] = field(default_factory=list)  # the sample, one per repeat
    load_seconds: float = 0.0  # loading the sample's states: reported, never counted
    firings: LedgerKeys = field(default_factory=set)
    user_ids: frozenset[str] = frozenset()

    @property
    def sample_seconds(self) -> float:
        return median(self.seconds)

    @property
    def extrapolated(self) -> float:
        """Seconds for the whole population, linearly from the sample."""
        return self.sample_seconds * self.population / self.sample if self.sample else 0.0


def sample_ids(engine: Engine, size: int, pick: str) -> list[str]:
    """`first`: the first `size` user ids in id order; `spread`: every k-th id, so the sample
    covers the whole signup range (ids follow signup order in the synthetic data)."""
    limit = size if pick == "first" else None
    with engine.connect() as connection:
        ids = list(connection.scalars(select(users.c.id).order_by(users.c.id).limit(limit)))
    if pick == "first":
        return ids
    step = max(len(ids) // size, 1)
    return ids[::step][:size]


def with_account_mates(engine: Engine, ids: Sequence[str]) -> list[str]:
    """The sampled users and every other member of their accounts, in id order."""
    sample = list(ids)
    with engine.connect() as connection:
        accounts_of = select(users.c.account_id).where(
            users.c.id.in_(sample), users.c.account_id.is_not(None)
        )
        mates = connection.scalars(select(users.c.id).where(users.c.account_id.in_(accounts_of)))
        return sorted({*sample, *mates})


def account_traits(engine: Engine, user_ids: Sequence[str]) -> dict[str, dict[str, object]]:
    """The traits of these users' accounts (those with a group call)."""
    of_users = select(users.c.account_id).where(users.c.id.in_(list(user_ids)))
    statement = select(accounts.c.id, accounts.c.traits).where(accounts.c.id.in_(of_users))
    with engine.connect() as connection:
        return {row.id: row.traits or {} for row in connection.execute(statement)}


def run_reference(
    app: App, population: int, size: int, pick: str, repeats: int
) -> ReferenceFigures:
    """Time every enabled rule over the sample's states (loaded from an empty ledger)."""
    engine = app.store.engine
    reset_ledger(engine)
    ids = with_account_mates(engine, sample_ids(engine, size, pick))
    load_seconds, world = timed(
        lambda: World(tuple(app.store.states.user_states(ids)), account_traits(engine, ids))
    )
    rules = app.rules.enabled
    figures = ReferenceFigures(population, len(world.states), load_seconds=load_seconds)
    figures.user_ids = frozenset(ids)
    for _ in range(repeats):
        seconds, figures.firings = timed(lambda: evaluate_all(rules, world))
        figures.seconds.append(seconds)
    return figures


def evaluate_all(rules: Sequence[Rule], world: World) -> LedgerKeys:
    """The reference's verdicts: each rule over the sample's users, one by one."""
    return {
        (rule.id, firing.subject, firing.occurrence, firing.user_id)
        for rule in rules
        for firing in firings(rule, world, NOW)
    }


def disagreements(figures: ReferenceFigures, engine_keys: LedgerKeys) -> int:
    """How many firings (ledger key and recipient) on the sample the engine and the reference
    disagree on."""
    engine_on_sample = {key for key in engine_keys if key[3] in figures.user_ids}
    return len(engine_on_sample ^ figures.firings)
