"""The reference evaluator (engine.reference) looping over a sample of users, extrapolated
linearly to the whole population. Loading the users' states is not timed: that favours the
reference, which makes the engine's ratio against it conservative."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from bench.databases import LedgerKeys, reset_ledger
from bench.dataset import NOW
from bench.timing import median, timed
from engine.app.wiring import App
from engine.model import UserState
from engine.rules.language import Rule
from engine.rules.reference import evaluate
from engine.sql.schema import users


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


def run_reference(
    app: App, population: int, size: int, pick: str, repeats: int
) -> ReferenceFigures:
    """Time every enabled rule over the sample's states (loaded from an empty ledger)."""
    engine = app.store.engine
    reset_ledger(engine)
    ids = sample_ids(engine, size, pick)
    load_seconds, states = timed(lambda: list(app.store.states.user_states(ids)))
    rules = app.rules.enabled
    figures = ReferenceFigures(population, len(states), load_seconds=load_seconds)
    figures.user_ids = frozenset(ids)
    for _ in range(repeats):
        seconds, figures.firings = timed(lambda: evaluate_all(rules, states))
        figures.seconds.append(seconds)
    return figures


def evaluate_all(rules: Sequence[Rule], states: Sequence[UserState]) -> LedgerKeys:
    """The per-user loop: each user, each rule, the reference's verdict."""
    fired: LedgerKeys = set()
    for state in states:
        for rule in rules:
            firing = evaluate(rule, state, NOW)
            if firing is not None:
                fired.add((rule.id, firing.user_id))
    return fired


def disagreements(figures: ReferenceFigures, engine_keys: LedgerKeys) -> int:
    """How many (rule, user) firings on the sample the engine and the reference disagree on."""
    engine_on_sample = {key for key in engine_keys if key[1] in figures.user_ids}
    return len(engine_on_sample ^ figures.firings)
