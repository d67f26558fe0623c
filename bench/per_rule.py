"""Where the time goes, rule by rule: the engine's tick of that one rule, its candidate query
alone (executed and fetched, no decisions, no writes), and the hand SQL of that rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.databases import count_rows, reset_ledger
from bench.dataset import NOW
from bench.engine_run import query_only, single_rule_runner, tick
from bench.handsql import compile_pack, run_pack
from bench.timing import median, timed
from engine.app.wiring import App


@dataclass(frozen=True)
class RuleFigures:
    rule_id: str
    rows: int
    engine_tick: float  # median seconds
    engine_query: float
    hand: float

    @property
    def python_side(self) -> float:
        """Tick minus query: decide, the cap, building rows, the INSERT round trips."""
        return self.engine_tick - self.engine_query

    @property
    def ratio(self) -> float:
        return self.engine_tick / self.hand if self.hand > 0 else float("inf")


def per_rule(app: App, repeats: int) -> list[RuleFigures]:
    return [_one_rule(app, rule.id, repeats) for rule in app.rules.enabled]


def _one_rule(app: App, rule_id: str, repeats: int) -> RuleFigures:
    engine = app.store.engine
    runner = single_rule_runner(app, rule_id)
    pack = compile_pack(engine.dialect.name, [rule_id])
    ticks = _repeat(app, repeats, lambda: tick(runner)[0])
    rows = count_rows(engine, "deliveries")
    queries = _repeat(app, repeats, lambda: query_only(app.store, app, rule_id))
    hands = _repeat(app, repeats, lambda: timed(lambda: run_pack(engine, pack, NOW))[0])
    reset_ledger(engine)
    return RuleFigures(rule_id, rows, median(ticks), median(queries), median(hands))


def _repeat(app: App, repeats: int, once: Callable[[], float]) -> list[float]:
    """`once` from an empty ledger, `repeats` times (the ledger is left as the last run wrote
    it, so that the caller can count its rows)."""
    seconds = []
    for _ in range(repeats):
        reset_ledger(app.store.engine)
        seconds.append(once())
    return seconds
