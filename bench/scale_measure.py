"""What the scaling run measures on one loaded database: whole ticks (first pass, steady state
five minutes later, and an idle re-tick at that same moment, when every rule's window is
empty), the same rule by rule, and the memory of a tick in a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench.databases import reset_ledger
from bench.dataset import NOW
from bench.engine_run import ROOT, STEADY_AFTER, single_rule_runner
from bench.errors import BenchError
from bench.timing import median, timed
from engine.app.wiring import App
from engine.runner import Runner, TickReport
from engine.sql.schema import deliveries

STEADY_AT = NOW + STEADY_AFTER
CHILD_TIMEOUT = 1800  # seconds: a 1M-user first pass takes well under a minute here


@dataclass
class TickFigures:
    first: list[float] = field(default_factory=list)  # seconds, one per repeat
    steady: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    rows_first: int = 0
    rows_steady: int = 0
    rows_idle: int = 0
    users_first: int = 0  # distinct users the first pass wrote for


@dataclass
class RuleFigures:
    rule_id: str
    first: list[float] = field(default_factory=list)
    steady: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    rows_first: int = 0
    rows_steady: int = 0

    @property
    def steady_share(self) -> float:
        return median(self.steady) / median(self.first)

    @property
    def idle_share(self) -> float:
        return median(self.idle) / median(self.first)


@dataclass(frozen=True)
class MemoryFigures:
    """One tick in a fresh process: resident memory before it, and the process's peak."""

    rss_before_mib: float
    peak_before_mib: float
    peak_mib: float
    peak_reset: bool  # False: the peak is the process's since start (imports included)
    seconds: float
    rows: int
    heap_peak_mib: float | None = None  # the Python heap's peak, from a traced twin run

    @property
    def growth_mib(self) -> float:
        return max(self.peak_mib - self.rss_before_mib, 0.0)


def whole_ticks(app: App, repeats: int) -> TickFigures:
    figures = TickFigures()
    for _ in range(repeats):
        reset_ledger(app.store.engine)
        seconds, figures.rows_first = _tick(app.runner, NOW)
        figures.first.append(seconds)
        figures.users_first = _distinct_users(app)
        seconds, figures.rows_steady = _tick(app.runner, STEADY_AT)
        figures.steady.append(seconds)
        seconds, figures.rows_idle = _tick(app.runner, STEADY_AT)
        figures.idle.append(seconds)
    reset_ledger(app.store.engine)
    return figures


def rule_ticks(app: App, repeats: int) -> list[RuleFigures]:
    """Each rule alone, in the tick's order (highest priority first, so that the frequency cap
    sees the same ledger as in a whole tick): all first passes, then all steady ticks, then
    all idle re-ticks."""
    runners = [
        (rule.id, single_rule_runner(app, rule.id))
        for rule in sorted(app.rules.enabled, key=lambda rule: -rule.priority)
    ]
    figures = {rule_id: RuleFigures(rule_id) for rule_id, _ in runners}
    for _ in range(repeats):
        reset_ledger(app.store.engine)
        for at, phase in ((NOW, "first"), (STEADY_AT, "steady"), (STEADY_AT, "idle")):
            for rule_id, runner in runners:
                seconds, rows = _tick(runner, at)
                _record(figures[rule_id], phase, seconds, rows)
    reset_ledger(app.store.engine)
    return list(figures.values())


def _record(figures: RuleFigures, phase: str, seconds: float, rows: int) -> None:
    getattr(figures, phase).append(seconds)
    if phase == "first":
        figures.rows_first = rows
    elif phase == "steady":
        figures.rows_steady = rows


def _tick(runner: Runner, at: datetime) -> tuple[float, int]:
    seconds, report = timed(lambda: runner.tick(at, dispatch=False))
    _fail_on_errors(report)
    return seconds, sum(report.written.values())


def _fail_on_errors(report: TickReport) -> None:
    failed = sorted(key.split("/")[0] for key in report.written if key.endswith("/error"))
    if failed:
        raise BenchError(f"the engine tick failed to evaluate: {', '.join(failed)} (see log)")


def _distinct_users(app: App) -> int:
    statement = select(func.count(func.distinct(deliveries.c.user_id)))
    with app.store.engine.connect() as connection:
        return int(connection.execute(statement).scalar_one())


def tick_memory(app: App, url: str, config: Path | None) -> tuple[MemoryFigures, MemoryFigures]:
    """A first pass and then a steady tick, each in a fresh process, after a traced twin of
    the first pass for the Python heap's share of it (the ledger is left as the steady tick
    wrote it: the caller resets it)."""
    reset_ledger(app.store.engine)
    heap = _child(url, NOW, config, trace=True)["heap_peak_mib"]
    reset_ledger(app.store.engine)
    first = MemoryFigures(**_child(url, NOW, config), heap_peak_mib=heap)
    return first, MemoryFigures(**_child(url, STEADY_AT, config))


def _child(url: str, at: datetime, config: Path | None, *, trace: bool = False) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.tick_child", url, at.isoformat()]
    if config is not None:
        command.append(str(config))
    if trace:
        command.append("--trace")
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"the tick process failed ({done.returncode}):\n{done.stderr[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures
