"""The hand-written SQL baseline: verified against the engine's ledger, then timed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import Engine

from bench.databases import LedgerKeys, count_rows, ledger_keys, reset_ledger
from bench.dataset import NOW
from bench.errors import BenchError
from bench.handsql import compile_pack, run_pack
from bench.timing import timed

EXAMPLES = 5


@dataclass
class HandFigures:
    seconds: list[float] = field(default_factory=list)  # one per repeat
    rows: int = 0
    guide_flags: int = 0


def run_hand(engine: Engine, repeats: int, expected: LedgerKeys) -> HandFigures:
    """An untimed pass whose (rule, subject, occurrence, user) set must equal the engine's, then
    `repeats` timed passes, each from an empty ledger."""
    pack = compile_pack(engine.dialect.name)
    figures = HandFigures()
    reset_ledger(engine)
    run_pack(engine, pack, NOW)
    verify(ledger_keys(engine), expected, engine.dialect.name)
    figures.rows = count_rows(engine, "deliveries")
    figures.guide_flags = count_rows(engine, "guide_flags")
    for _ in range(repeats):
        reset_ledger(engine)
        seconds, _ = timed(lambda: run_pack(engine, pack, NOW))
        figures.seconds.append(seconds)
    reset_ledger(engine)
    return figures


def verify(hand: LedgerKeys, engine: LedgerKeys, dialect: str) -> None:
    """Abort when the hand SQL and the engine did not write the same ledger keys (rule,
    subject, occurrence) for the same recipients."""
    if hand == engine:
        return
    raise BenchError(
        f"on {dialect}, the hand-written SQL and the engine tick wrote different ledger rows "
        f"({len(hand)} vs {len(engine)}); the ratio would compare different work.\n"
        + describe_difference("only the hand SQL", hand - engine)
        + describe_difference("only the engine", engine - hand)
    )


def describe_difference(label: str, keys: LedgerKeys) -> str:
    if not keys:
        return ""
    per_rule = Counter(key[0] for key in keys)
    examples = sorted(keys)[:EXAMPLES]
    lines = [f"  {label}: {len(keys)} rows, by rule {dict(sorted(per_rule.items()))}"]
    lines.append(f"    e.g. {examples}")
    return "\n".join(lines) + "\n"
