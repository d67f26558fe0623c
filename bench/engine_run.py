"""The engine under test, built the way engine/app.py builds it (a recording mail transport;
nothing is sent: ticks run with dispatch=False), and its timed ticks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from bench.databases import LedgerKeys, count_rows, ledger_keys, reset_ledger
from bench.dataset import NOW
from bench.errors import BenchError
from bench.timing import timed
from engine.app.wiring import App, open_app
from engine.config import Config, DatabaseConfig, PathsConfig, load_config
from engine.delivery.testing import RecordingTransport
from engine.rules.language import RuleSet
from engine.runner import Runner, TickReport
from engine.sql.candidates import candidates as candidates_query
from engine.store import Store

ROOT = Path(__file__).resolve().parent.parent
STEADY_AFTER = timedelta(minutes=5)


@dataclass
class EngineFigures:
    first: list[float] = field(default_factory=list)  # seconds, one per repeat
    steady: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)  # a second tick at the steady moment
    rows_first: int = 0
    guide_flags_first: int = 0
    rows_steady: int = 0
    keys: LedgerKeys = field(default_factory=set)  # the first pass's ledger keys


SHIPPED_CONFIG = ROOT / "config.yaml"  # what users run: quiet hours and a daily cap of 3


def bench_config(url: str, config_file: Path | None) -> Config:
    """A config file's settings (by default the shipped one: its mail cap, quiet hours...),
    or (None: `--defaults`) the built-in defaults with the project's rules and templates; the
    database is always the bench's."""
    if config_file is None:
        paths = PathsConfig(rules=ROOT / "rules", templates=ROOT / "templates")
        return Config(database=DatabaseConfig(url=url), paths=paths)
    loaded = load_config(config_file, environ={}, required=True)
    return loaded.model_copy(update={"database": DatabaseConfig(url=url)})


def open_engine(url: str, config_file: Path | None) -> App:
    return open_app(bench_config(url, config_file), transport=RecordingTransport())


def single_rule_runner(app: App, rule_id: str) -> Runner:
    """The same runner with a rule set of one rule (for the per-rule breakdown)."""
    rules = RuleSet((app.rules.get(rule_id),), dict(app.rules.sources))
    return Runner(
        store=app.store,
        rules=rules,
        renderer=app.renderer,
        transport=RecordingTransport(),
        config=app.config,
    )


def tick(runner: Runner, steady: bool = False) -> tuple[float, int]:
    """One timed evaluation tick (ledger writes and guide flags, no dispatch); its rows."""
    at = NOW + STEADY_AFTER if steady else NOW
    seconds, report = timed(lambda: runner.tick(at, dispatch=False))
    _fail_on_rule_errors(report)
    return seconds, sum(report.written.values())


def _fail_on_rule_errors(report: TickReport) -> None:
    """The tick logs and skips a rule that fails; a benchmark must not time that as fast."""
    failed = sorted(key.split("/")[0] for key in report.written if key.endswith("/error"))
    if failed:
        raise BenchError(f"the engine tick failed to evaluate: {', '.join(failed)} (see log)")


def run_engine(app: App, repeats: int) -> EngineFigures:
    """An untimed warm-up pass (whose ledger is the reference for the checks), then
    `repeats` x (empty ledger -> timed first pass -> timed steady-state tick -> timed idle
    re-tick at that same moment)."""
    figures = EngineFigures()
    engine = app.store.engine
    reset_ledger(engine)
    tick(app.runner)
    figures.keys = ledger_keys(engine)
    figures.guide_flags_first = count_rows(engine, "guide_flags")
    for _ in range(repeats):
        reset_ledger(engine)
        seconds, figures.rows_first = tick(app.runner)
        figures.first.append(seconds)
        seconds, figures.rows_steady = tick(app.runner, steady=True)
        figures.steady.append(seconds)
        seconds, _ = tick(app.runner, steady=True)
        figures.idle.append(seconds)
    reset_ledger(engine)
    return figures


def query_only(store: Store, app: App, rule_id: str) -> float:
    """Seconds to run one rule's candidate query and fetch its rows (no decide, no writes)."""
    rule = app.rules.get(rule_id)
    seconds, _ = timed(
        lambda: sum(len(batch) for batch in store.ledger.candidates(candidates_query(rule, NOW)))
    )
    return seconds
