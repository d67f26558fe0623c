"""`python -m bench.dispatch`: emails per second through `Runner.dispatch` to a local SMTP
server (aiosmtpd on 127.0.0.1, security `none`), where the time goes (database, rendering,
MIME, the SMTP conversation), and, for scale, plain smtplib sending the same pre-built
messages, over one connection and over one connection per message.

The population is the bench's synthetic one (engine.demo), loaded through the Store and
evaluated by a first-pass `tick(now, dispatch=False)` of the default rule pack with quiet
hours off, so that its emails are due; exactly `--emails` of them are left due. Each repeat
times `Runner.dispatch(now)` with the real `SmtpTransport` and then puts the same rows back to
`pending`. The breakdown comes from timing subclasses handed to the Runner (store, renderer,
transport): no engine code is patched. The dispatcher sends over `--sessions` parallel SMTP
sessions (the config's `mail.smtp.sessions` by default). The target (issue 14): at least
TARGET emails/s on each database, printed with the ratio to raw smtplib over one connection;
it and the checks (the server received exactly the emails marked `sent`, each Message-ID
once) print PASS or MISS."""

from __future__ import annotations

import argparse
import gc
import json
import smtplib
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, bindparam, func, select, update

from bench.arguments import positive
from bench.databases import DIALECTS, analyze, open_database, server_version
from bench.dataset import NOW, load, make_population
from bench.engine_run import ROOT, bench_config
from bench.errors import BenchError
from bench.machine import Machine
from bench.smtp_sink import ProcessSink, Received, Sink, ThreadSink
from bench.timing import timed
from engine.app.wiring import load_rule_set
from engine.config import Config, SmtpConfig
from engine.daemon.reload import frozen_renderer
from engine.delivery.render import RenderedEmail, Renderer
from engine.delivery.smtp import SmtpTransport, serialize
from engine.model import Status
from engine.runner import Runner
from engine.sql.schema import deliveries
from engine.store import Store, connect, migrate
from engine.store.testing import intercept
from engine.telemetry.metrics import Metrics

DEFAULT_JSON = ROOT / "bench" / "results" / "dispatch.json"
CONFIG_FILE = ROOT / "config.yaml"  # the shipped settings (brand, links, From), mail overridden
USERS_PER_EMAIL = 22  # measured: ~5.3% of demo users have an email due at NOW (1,064 of 20,000)
POSTPONED = NOW + timedelta(days=3650)  # where the due emails beyond --emails are moved
WARM_UP = 100  # emails dispatched, untimed, before the timed repeats
SMTP_TIMEOUT = 30.0  # seconds, every SMTP wait (the engine's own default timeout too)
WIDE = 160
T = TypeVar("T")

# Steps timed by the subclasses, and the gaps between consecutive timed steps: the gap
# before a step is named after the engine work that fills it (see Runner._send).
TARGET = 1000.0  # emails/s through Runner.dispatch, on each database (issue 14, item 5)
STEPS = ("claim", "expire", "render", "advance", "send", "connect", "transmit")
# Gaps are per session (thread): the gap before a step is the engine work that fills it.
GAP_BEFORE = {
    "claim": "loop",
    "expire": "loop",
    # The previous send's metric and log line, the feed, rules.get, the directory lookup,
    # email_context, the unsubscribe URL.
    "render": "context",
    "advance": "build",  # _envelope + build_message: the EmailMessage
    "send": "loop",  # between the row going `sending` and the hand-over: nothing
}
NOTES = (
    "Times are wall clock around the engine's own calls: subclasses of Store, Renderer and "
    "SmtpTransport passed to the Runner time claim_due/mark, render, send/_connect/_transmit; "
    "the gaps between those calls are the engine code that runs there (Runner._send).",
    "MIME serialisation happens inside SmtpTransport.send; it is re-measured on the same "
    "messages (engine.delivery.smtp.serialize, as the transport does: a fast-path message "
    "carries its wire form) and moved from the SMTP transaction to the MIME group.",
    "With several SMTP sessions the steps are thread-seconds summed over the sessions, each "
    "including its waits for the interpreter lock: shares, not a timeline.",
    "The SMTP server (aiosmtpd) runs in a thread of this process by default; its work is inside "
    "the SMTP figures, as a real relay's would be. A child process (--server process) was not "
    "faster on this 2-core machine (runs alternated on SQLite: medians 123 vs 99 and 83 vs "
    "65 emails/s, thread vs process; shares within 4 points).",
    "On 2 shared cores the database server competes for the CPU: during the PostgreSQL runs the "
    "CPU-only steps (build_message, connect) take several times longer than during the SQLite "
    "runs, so compare shares within a column, and the rates with care.",
    "Raw smtplib sends the same messages, serialised beforehand (not timed), with sendmail().",
    "Repeats put the same rows back to pending; rates are medians, the breakdown sums all repeats.",
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dispatch", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--emails", type=positive, default=800, help="due emails to dispatch")
    parser.add_argument("--db", choices=(*DIALECTS, "both"), default="both")
    parser.add_argument("--repeat", type=positive, default=3, help="timed runs (median)")
    parser.add_argument(
        "--server",
        choices=("thread", "process"),
        default="thread",
        help="where the aiosmtpd sink runs: a thread of this process (default) or a child "
        "process (measured: no faster here, see the module's notes)",
    )
    parser.add_argument(
        "--sessions",
        type=positive,
        default=SmtpConfig().sessions,
        help="parallel SMTP sessions the dispatcher sends over (mail.smtp.sessions; "
        "default: the config's default)",
    )
    parser.add_argument(
        "--reply-ms",
        type=float,
        default=0.0,
        help="milliseconds the sink waits before its reply to each message, as a real "
        "relay takes (default 0: loopback, where parallel sessions only share the CPU)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--seed", type=int, default=42)
    return parser.parse_args(argv)


# ---- timing the engine's calls ---------------------------------------------------------


class Recorder:
    """Seconds per step, and per gap between consecutive steps of one session (thread),
    summed over the sessions of one dispatch: with several sessions these are thread-seconds,
    each step's share of the work (waits for the interpreter lock included)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()
        self._since = threading.local()  # per thread: when its last timed step ended
        self._epoch = 0.0
        self.keep: list[EmailMessage] | None = None  # the messages sent, when asked to keep them
        self.reset()

    def reset(self) -> None:
        self.seconds = dict.fromkeys((*STEPS, *GAP_BEFORE.values()), 0.0)
        self._epoch = time.perf_counter()  # a session's first gap starts with the dispatch
        self._since = threading.local()

    def begin(self, step: str) -> float:
        started = time.perf_counter()
        if step in GAP_BEFORE:
            since = getattr(self._since, "at", self._epoch)
            self._add(GAP_BEFORE[step], started - since)
        return started

    def end(self, step: str, started: float) -> None:
        ended = time.perf_counter()
        self._add(step, ended - started)
        if step in GAP_BEFORE:
            self._since.at = ended

    def _add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] += seconds

    def add_keep(self, message: EmailMessage) -> None:
        with self._lock:
            if self.keep is not None:
                self.keep.append(message)


def timing_store(store: Store, recorder: Recorder) -> Store:
    """The engine's Store; the dispatcher's database calls timed (through the store's seam)."""

    def timed(step: str) -> Callable[..., Any]:
        def around(real: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            started = recorder.begin(step)
            try:
                return real(*args, **kwargs)
            finally:
                recorder.end(step, started)

        return around

    outbox = intercept(
        store.outbox,
        claim_due=timed("claim"),
        advance=timed("advance"),
        expire_stale_claims=timed("expire"),
    )
    return store.replacing(outbox=outbox)


class TimingRenderer(Renderer):
    """The engine's Renderer (Jinja2, subject + text + HTML), timed."""

    def __init__(self, directory: Path, recorder: Recorder) -> None:
        super().__init__(directory)
        self.recorder = recorder

    def render(self, name: str, context: Any, locale: str | None = None) -> RenderedEmail:
        started = self.recorder.begin("render")
        try:
            return super().render(name, context, locale)
        finally:
            self.recorder.end("render", started)


class TimingSmtpTransport(SmtpTransport):
    """The engine's SmtpTransport; the whole send, opening the session (`_connect`, the seam
    the transport keeps for a pooled variant) and the transaction (`_transmit`) timed."""

    def __init__(self, config: SmtpConfig, recorder: Recorder) -> None:
        super().__init__(config)
        self.recorder = recorder

    def send(self, message: EmailMessage) -> str:
        started = self.recorder.begin("send")
        try:
            return super().send(message)
        finally:
            self.recorder.end("send", started)
            self.recorder.add_keep(message)

    def _connect(self) -> smtplib.SMTP:
        started = self.recorder.begin("connect")
        try:
            return super()._connect()
        finally:
            self.recorder.end("connect", started)

    def _transmit(
        self, client: smtplib.SMTP, sender: str, recipients: list[str], message: EmailMessage
    ) -> str:
        started = self.recorder.begin("transmit")
        try:
            return super()._transmit(client, sender, recipients, message)
        finally:
            self.recorder.end("transmit", started)


# ---- figures ---------------------------------------------------------------------------


@dataclass
class Run:
    """One timed dispatch."""

    seconds: float
    steps: dict[str, float]
    sessions: int  # SMTP connections the server saw


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class DbFigures:
    dialect: str
    server: str
    users: int
    emails: int
    sessions: int  # parallel SMTP sessions of the dispatcher
    runs: list[Run] = field(default_factory=list)
    serialize: list[float] = field(default_factory=list)  # seconds for all messages, per repeat
    raw_one: list[float] = field(default_factory=list)  # seconds, one smtplib connection
    raw_each: list[float] = field(default_factory=list)  # seconds, a connection per message
    transport: list[float] = field(default_factory=list)  # seconds, SmtpTransport.send alone
    checks: list[Check] = field(default_factory=list)

    def rate(self, runs: Sequence[float]) -> float:
        return self.emails / statistics.median(runs)

    @property
    def dispatch_rate(self) -> float:
        return self.rate([run.seconds for run in self.runs])

    def breakdown(self) -> dict[str, float]:
        """Seconds per row of the breakdown, summed over the repeats."""
        steps: Counter[str] = Counter()
        for run in self.runs:
            steps.update(run.steps)
        total = sum(run.seconds for run in self.runs)
        serialize = min(sum(self.serialize), steps["transmit"])
        rows = {
            "db_claim": steps["claim"],
            "db_advance": steps["advance"],
            "context": steps["context"],
            "render": steps["render"],
            "mime_build": steps["build"],
            "mime_serialize": serialize,
            "smtp_connect": steps["connect"],
            "smtp_transaction": steps["transmit"] - serialize,
            "smtp_rest": steps["send"] - steps["connect"] - steps["transmit"],
        }
        # Loop, stale-claim check, instrumentation; with several sessions the steps are
        # thread-seconds and may add up to more than the wall clock: then none is left.
        rows["loop"] = max(0.0, total - sum(rows.values()))
        return rows

    def groups(self) -> dict[str, float]:
        rows = self.breakdown()
        return {
            "database (claim, advance)": rows["db_claim"] + rows["db_advance"],
            "rendering (Jinja2)": rows["render"],
            "MIME (build + serialise)": rows["mime_build"] + rows["mime_serialize"],
            "SMTP conversation": rows["smtp_connect"]
            + rows["smtp_transaction"]
            + rows["smtp_rest"],
            "other engine work": rows["context"] + rows["loop"],
        }

    @property
    def total(self) -> float:
        """Seconds the shares are of: the wall clock, or the thread-seconds of the steps
        when several sessions added up to more."""
        return max(sum(run.seconds for run in self.runs), sum(self.breakdown().values()))


BREAKDOWN_LABELS = {
    "db_claim": "database: claim_due (UPDATE ... RETURNING, load users/anchors), per 100",
    "db_advance": "database: the last outcome + the next row `sending`, one transaction per email",
    "context": "template context + signed unsubscribe URL (+ the last send's metric, log)",
    "render": "render: Jinja2 subject, text, HTML",
    "mime_build": "MIME: build_message (EmailMessage)",
    "mime_serialize": "MIME: serialise to bytes (in SmtpTransport.send; re-measured)",
    "smtp_connect": "SMTP: connect + greeting + EHLO (once per session)",
    "smtp_transaction": "SMTP: MAIL, RCPT, DATA",
    "smtp_rest": "SMTP: read From/To, QUIT, close",
    "loop": "dispatch loop, stale-claim check, timers",
}


# ---- the population --------------------------------------------------------------------


def dispatch_config(url: str, port: int, sessions: int) -> Config:
    """The shipped config (brand, links, From, daily cap) on the bench's database, with SMTP to
    the sink in the clear and quiet hours off, so that every firing is due at once."""
    config = bench_config(url, CONFIG_FILE)
    smtp = SmtpConfig(
        host="127.0.0.1",
        port=port,
        security="none",
        timeout=timedelta(seconds=SMTP_TIMEOUT),
        sessions=sessions,
    )
    mail = config.mail.model_copy(update={"transport": "smtp", "smtp": smtp, "quiet_hours": None})
    return config.model_copy(update={"mail": mail})


def prepare(
    store: Store, runner: Runner, users: int, emails: int, seed: int, console: Console
) -> tuple[list[Slot], list[int]]:
    """Load the population, run the first pass, and leave exactly `emails` due for the timed
    runs and up to WARM_UP more for the warm-up (the others are postponed); returns the
    timed rows and the warm-up ids."""
    population = _step(console, f"generating {users:,} users", lambda: make_population(users, seed))
    load(store, population, console)
    del population
    gc.collect()
    _step(console, "ANALYZE", lambda: analyze(store.engine))
    report = _step(
        console, "first-pass tick (dispatch=False)", lambda: runner.tick(NOW, dispatch=False)
    )
    failed = sorted(key.split("/")[0] for key in report.written if key.endswith("/error"))
    if failed:
        raise BenchError(f"the first-pass tick failed to evaluate: {', '.join(failed)}")
    due = _due_rows(store.engine)
    if len(due) < emails + WARM_UP:
        raise BenchError(
            f"only {len(due):,} emails are due after the first pass over {users:,} users; "
            f"{emails:,} + {WARM_UP} for the warm-up were asked for (raise USERS_PER_EMAIL)"
        )
    console.print(f"{len(due):,} emails due; {emails:,} timed, {WARM_UP} for the warm-up")
    _postpone(store.engine, [row_id for row_id, _ in due[emails + WARM_UP :]])
    _step(console, "ANALYZE", lambda: analyze(store.engine))
    return due[:emails], [row_id for row_id, _ in due[emails : emails + WARM_UP]]


def _postpone(engine: Engine, ids: Sequence[int]) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(deliveries).where(deliveries.c.id.in_(list(ids))).values(send_at=POSTPONED)
        )


def _restore(engine: Engine, slots: Sequence[Slot]) -> None:
    """Give rows their send_at back (after a postponement)."""
    with engine.begin() as connection:
        connection.execute(
            update(deliveries)
            .where(deliveries.c.id == bindparam("b_id"))
            .values(send_at=bindparam("b_at")),
            [{"b_id": row_id, "b_at": send_at} for row_id, send_at in slots],
        )


Slot = tuple[int, datetime]  # a due row: its id and its send_at


def _due_rows(engine: Engine) -> list[Slot]:
    """(id, send_at) of the due emails, in the order the dispatcher claims them."""
    statement = (
        select(deliveries.c.id, deliveries.c.send_at)
        .where(
            deliveries.c.status == Status.PENDING.value,
            deliveries.c.email_template.is_not(None),
            deliveries.c.send_at <= NOW,
        )
        .order_by(deliveries.c.send_at, deliveries.c.id)
    )
    with engine.connect() as connection:
        return [(int(row.id), row.send_at) for row in connection.execute(statement)]


def _requeue(engine: Engine, ids: Sequence[int]) -> None:
    """Put the dispatched rows back as the first pass left them, for the next repeat."""
    with engine.begin() as connection:
        connection.execute(
            update(deliveries)
            .where(deliveries.c.id.in_(list(ids)))
            .values(
                status=Status.PENDING.value,
                attempts=0,
                reason=None,
                reply=None,
                sent_at=None,
                updated_at=NOW,
            )
        )


def _sent_message_ids(engine: Engine, ids: Sequence[int]) -> list[str]:
    statement = select(deliveries.c.message_id).where(
        deliveries.c.id.in_(list(ids)), deliveries.c.status == Status.SENT.value
    )
    with engine.connect() as connection:
        return [str(row.message_id) for row in connection.execute(statement)]


def _statuses(engine: Engine, ids: Sequence[int]) -> dict[str, int]:
    statement = (
        select(deliveries.c.status, func.count())
        .where(deliveries.c.id.in_(list(ids)))
        .group_by(deliveries.c.status)
    )
    with engine.connect() as connection:
        return {str(row[0]): int(row[1]) for row in connection.execute(statement)}


# ---- the measurements ------------------------------------------------------------------


def measure(dialect: str, sink: Sink, args: argparse.Namespace, console: Console) -> DbFigures:
    console.rule(dialect)
    with open_database(dialect) as url:
        config = dispatch_config(url, sink.port, args.sessions)
        engine = connect(config.database_url)
        try:
            migrate(engine)
            recorder = Recorder()
            store = timing_store(Store(engine), recorder)
            renderer = TimingRenderer(config.templates_dir, recorder)
            # The daemon renders from a snapshot of the templates (no stat() per render).
            renderer.env.loader = frozen_renderer(config.templates_dir).env.loader
            runner = Runner(
                store=store,
                rules=load_rule_set(config, renderer),
                renderer=renderer,
                transport=TimingSmtpTransport(config.mail.smtp, recorder),
                config=config,
                metrics=Metrics(),
            )
            users = (args.emails + WARM_UP) * USERS_PER_EMAIL
            timed_rows, warm = prepare(store, runner, users, args.emails, args.seed, console)
            ids = [row_id for row_id, _ in timed_rows]
            _step(console, "warm-up dispatch", lambda: _warm_up(runner, sink, timed_rows, warm))
            figures = DbFigures(
                dialect, server_version(engine), users, len(ids), config.mail.smtp.sessions
            )
            plain = SmtpTransport(config.mail.smtp)
            with console.status(f"{args.repeat} x dispatch {len(ids):,} emails + raw SMTP ..."):
                messages: list[EmailMessage] = []  # what the first dispatch sent
                for repeat in range(args.repeat):  # interleaved: all see the same machine load
                    kept = _dispatch_once(figures, runner, recorder, sink, ids, keep=not messages)
                    messages = messages or kept
                    _raw_once(figures, sink, plain, messages)
                    _requeue(engine, ids)
                    console.print(
                        f"  repeat {repeat + 1}: dispatch "
                        f"{len(ids) / figures.runs[-1].seconds:,.0f} emails/s, raw smtplib "
                        f"{len(ids) / figures.raw_one[-1]:,.0f}/s (one connection), "
                        f"{len(ids) / figures.raw_each[-1]:,.0f}/s (one per message)"
                    )
            figures.checks.append(target_check(figures))
            return figures
        finally:
            engine.dispose()


def target_check(figures: DbFigures) -> Check:
    rate = figures.dispatch_rate
    return Check(
        f"target: Runner.dispatch >= {TARGET:,.0f} emails/s",
        rate >= TARGET,
        f"{rate:,.0f} emails/s over {figures.sessions} SMTP sessions, "
        f"{rate / figures.rate(figures.raw_one):.0%} of raw smtplib over one connection "
        f"({figures.rate(figures.raw_one):,.0f}/s)",
    )


def target_lines(results: Sequence[DbFigures]) -> list[str]:
    """One line per database: the rate, its ratio to raw smtplib, PASS or MISS."""
    lines = []
    for r in results:
        raw = r.rate(r.raw_one)
        verdict = "PASS" if r.dispatch_rate >= TARGET else "MISS"
        lines.append(
            f"{verdict} {r.dialect}: Runner.dispatch {r.dispatch_rate:,.0f} emails/s "
            f"(target >= {TARGET:,.0f}) over {r.sessions} SMTP sessions; raw smtplib over one "
            f"connection {raw:,.0f}/s; ratio {r.dispatch_rate / raw:.0%}"
        )
    return lines


def _warm_up(runner: Runner, sink: Sink, timed: Sequence[Slot], warm: Sequence[int]) -> None:
    """An untimed dispatch of WARM_UP other due emails, with the timed rows postponed
    meanwhile: Jinja2 compiles the templates and the connection pool fills, as in a daemon
    that has run before. The warm-up rows stay `sent`, out of the way."""
    engine = runner.store.engine
    _postpone(engine, [row_id for row_id, _ in timed])
    try:
        outcome = runner.dispatch(NOW)
    finally:
        _restore(engine, timed)
    if outcome != Counter({Status.SENT.value: len(warm)}):
        raise BenchError(f"the warm-up dispatch did not send its {len(warm)} emails: {outcome}")
    sink.reset()


def _dispatch_once(
    figures: DbFigures,
    runner: Runner,
    recorder: Recorder,
    sink: Sink,
    ids: Sequence[int],
    *,
    keep: bool,
) -> list[EmailMessage]:
    """One timed `Runner.dispatch(NOW)`, checked against the sink; the messages it sent,
    when asked to keep them."""
    engine = runner.store.engine
    sink.reset()
    kept: list[EmailMessage] = []
    recorder.keep = kept if keep else None
    gc.collect()
    recorder.reset()
    seconds, outcome = timed(lambda: runner.dispatch(NOW))
    steps = dict(recorder.seconds)
    recorder.keep = None
    received = sink.snapshot()
    figures.runs.append(Run(seconds, steps, received.sessions))
    sent = _sent_message_ids(engine, ids)
    _check_dispatch(figures, outcome, received, sent, _statuses(engine, ids))
    return kept


def _check_dispatch(
    figures: DbFigures,
    outcome: Counter[str],
    received: Received,
    sent: Sequence[str],
    statuses: dict[str, int],
) -> None:
    n = len(figures.runs)
    expected = figures.emails
    counts = Counter(received.message_ids)
    repeated = sum(1 for count in counts.values() if count > 1)
    checks = [
        Check(
            f"dispatch {n}: every due email sent",
            outcome == Counter({Status.SENT.value: expected}) and statuses == {"sent": expected},
            f"outcome {dict(outcome)}, ledger {statuses}",
        ),
        Check(
            f"dispatch {n}: server received exactly the emails marked sent",
            len(received.message_ids) == len(sent) == expected,
            f"received {len(received.message_ids):,}, marked sent {len(sent):,}",
        ),
        Check(
            f"dispatch {n}: each Message-ID once, the ledger's",
            repeated == 0 and set(counts) == set(sent) and len(sent) == len(set(sent)),
            f"{len(counts):,} distinct ids, {repeated} repeated, "
            f"{len(set(counts) ^ set(sent))} not matching the ledger",
        ),
    ]
    figures.checks += checks


def _raw_once(
    figures: DbFigures, sink: Sink, transport: SmtpTransport, messages: Sequence[EmailMessage]
) -> None:
    """For scale: the same messages, serialised (timed apart), sent with plain smtplib over
    one connection and over one connection each, then through SmtpTransport.send alone."""
    seconds, payloads = timed(lambda: [_wire(m) for m in messages])
    figures.serialize.append(seconds)
    figures.raw_one.append(
        _sent_to(figures, sink, "smtplib, one connection", lambda: _one_connection(sink, payloads))
    )
    figures.raw_each.append(
        _sent_to(
            figures, sink, "smtplib, a connection each", lambda: _connection_each(sink, payloads)
        )
    )
    figures.transport.append(
        _sent_to(
            figures, sink, "SmtpTransport.send alone", lambda: _transport_only(transport, messages)
        )
    )


Payload = tuple[str, list[str], bytes]


def _wire(message: EmailMessage) -> Payload:
    """What SmtpTransport sends for an ASCII message: envelope addresses and CRLF bytes
    (its own serialisation: the wire form a fast-path message carries, else the generator)."""
    sender = next(a for _, a in getaddresses(message.get_all("From", [])) if a)
    recipients = [a for _, a in getaddresses(message.get_all("To", [])) if a]
    return sender, recipients, serialize(message, utf8=False)


def _one_connection(sink: Sink, payloads: Sequence[Payload]) -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=SMTP_TIMEOUT) as client:
        for sender, recipients, payload in payloads:
            client.sendmail(sender, recipients, payload)


def _connection_each(sink: Sink, payloads: Sequence[Payload]) -> None:
    for sender, recipients, payload in payloads:
        with smtplib.SMTP(sink.host, sink.port, timeout=SMTP_TIMEOUT) as client:
            client.sendmail(sender, recipients, payload)


def _transport_only(transport: SmtpTransport, messages: Sequence[EmailMessage]) -> None:
    for message in messages:
        transport.send(message)


def _sent_to(figures: DbFigures, sink: Sink, label: str, work: Callable[[], None]) -> float:
    """Time `work` and check that the sink got every message once."""
    sink.reset()
    gc.collect()
    seconds, _ = timed(work)
    received = sink.snapshot()
    counts = Counter(received.message_ids)
    ok = len(received.message_ids) == figures.emails == len(counts)
    if not ok:  # a raw baseline that lost messages would flatter itself
        figures.checks.append(
            Check(
                f"{label}: server received each message once",
                False,
                f"received {len(received.message_ids):,} ({len(counts):,} distinct) "
                f"of {figures.emails:,}",
            )
        )
    return seconds


# ---- output ----------------------------------------------------------------------------


def _share(part: float, total: float) -> str:
    return f"{part / total:.1%}" if total > 0 else "-"


def summary_table(results: Sequence[DbFigures]) -> Table:
    table = Table(title="dispatch: emails/s and where the time goes", title_justify="left")
    table.add_column("measure", overflow="fold")
    for r in results:
        table.add_column(r.dialect, justify="right")
    table.add_column("detail", overflow="fold")

    def row(label: str, cells: list[str], detail: str = "") -> None:
        table.add_row(label, *cells, detail)

    row(
        "Runner.dispatch",
        [f"{r.dispatch_rate:,.0f} emails/s" for r in results],
        f"median of {len(results[0].runs)}; {results[0].emails:,} emails, real SmtpTransport, "
        f"{results[0].sessions} SMTP sessions",
    )
    for name in results[0].groups():
        row(
            f"  share: {name}",
            [_share(r.groups()[name], r.total) for r in results],
            "ms/email: "
            + ", ".join(
                f"{1000 * r.groups()[name] / (r.emails * len(r.runs)):.3f}" for r in results
            ),
        )
    row(
        "SMTP connections per email (dispatch)",
        [f"{statistics.median(run.sessions for run in r.runs) / r.emails:.2f}" for r in results],
        "sessions the server saw / emails",
    )
    row(
        "SmtpTransport.send alone",
        [f"{r.rate(r.transport):,.0f} emails/s" for r in results],
        "the same pre-built messages, no database, no rendering",
    )
    row(
        "raw smtplib, a connection per message",
        [f"{r.rate(r.raw_each):,.0f} emails/s" for r in results],
        "pre-serialised bytes, sendmail(), connect + EHLO + QUIT each",
    )
    row(
        "raw smtplib, one connection",
        [f"{r.rate(r.raw_one):,.0f} emails/s" for r in results],
        "pre-serialised bytes, sendmail() over one session",
    )
    row(
        "dispatch / raw smtplib one connection",
        [f"{r.dispatch_rate / r.rate(r.raw_one):.0%}" for r in results],
        "",
    )
    return table


def breakdown_table(result: DbFigures) -> Table:
    table = Table(
        title=f"{result.dialect}: {result.server.split(' on ')[0]}; {result.emails:,} emails x "
        f"{len(result.runs)}, from {result.users:,} users",
        title_justify="left",
    )
    for name in ("step", "ms/email", "share"):
        table.add_column(name, justify="left" if name == "step" else "right", overflow="fold")
    count = result.emails * len(result.runs)
    for key, seconds in result.breakdown().items():
        table.add_row(
            BREAKDOWN_LABELS[key], f"{1000 * seconds / count:.3f}", _share(seconds, result.total)
        )
    table.add_row("total", f"{1000 * result.total / count:.3f}", "100%")
    return table


def checks_table(results: Sequence[DbFigures]) -> Table:
    table = Table(title="checks", title_justify="left")
    for name in ("database", "check", "detail", "result"):
        table.add_column(name, overflow="fold")
    for r in results:
        for check in r.checks:
            verdict = "[bold green]PASS[/]" if check.passed else "[bold red]MISS[/]"
            table.add_row(r.dialect, check.name, check.detail, verdict)
    return table


def machine_table(machine: Machine, server: str) -> Table:
    table = Table(title="machine", title_justify="left", show_header=False)
    table.add_column("key")
    table.add_column("value", overflow="fold")
    for key, value in asdict(machine).items():
        table.add_row(key, str(value if value is not None else "not measured"))
    table.add_row("SMTP server", f"aiosmtpd on 127.0.0.1, in a {server}")
    return table


def to_json(r: DbFigures) -> dict[str, Any]:
    count = r.emails * len(r.runs)
    return {
        "server": r.server,
        "users": r.users,
        "emails": r.emails,
        "smtp_sessions_parallel": r.sessions,
        "target_emails_per_s": TARGET,
        "target_met": r.dispatch_rate >= TARGET,
        "dispatch_to_raw_one_connection": r.dispatch_rate / r.rate(r.raw_one),
        "dispatch_emails_per_s": r.dispatch_rate,
        "dispatch_seconds": [run.seconds for run in r.runs],
        "smtp_sessions": [run.sessions for run in r.runs],
        "shares": {name: s / r.total for name, s in r.groups().items()},
        "ms_per_email": {name: 1000 * s / count for name, s in r.breakdown().items()},
        "transport_only_emails_per_s": r.rate(r.transport),
        "raw_smtplib_one_connection_emails_per_s": r.rate(r.raw_one),
        "raw_smtplib_connection_each_emails_per_s": r.rate(r.raw_each),
        "serialize_seconds": r.serialize,
        "checks": [asdict(check) for check in r.checks],
    }


def write_json(
    path: Path, args: argparse.Namespace, machine: Machine, results: Sequence[DbFigures]
) -> None:
    document = {
        "settings": {
            "command": " ".join(["python -m bench.dispatch", *sys.argv[1:]]),
            "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "emails": args.emails,
            "repeat": args.repeat,
            "sessions": args.sessions,
            "server": args.server,
            "reply_ms": args.reply_ms,
            "seed": args.seed,
            "now": NOW.isoformat(),
        },
        "machine": asdict(machine),
        "databases": {r.dialect: to_json(r) for r in results},
        "notes": list(NOTES),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


# ---- the command -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    console = console if console.is_terminal else Console(width=WIDE)
    try:
        results = _run(args, console)
    except BenchError as exc:
        console.print(f"[bold red]benchmark aborted:[/] {exc}")
        return 2
    return 0 if all(c.passed for r in results for c in r.checks) else 1


def _run(args: argparse.Namespace, console: Console) -> list[DbFigures]:
    machine = Machine()
    results = []
    delay = args.reply_ms / 1000
    sink: ThreadSink | ProcessSink = (
        ThreadSink(delay) if args.server == "thread" else ProcessSink(delay)
    )
    with sink:
        for dialect in DIALECTS if args.db == "both" else (args.db,):
            result = measure(dialect, sink, args, console)
            if dialect == "postgresql":
                machine.postgresql = result.server
            results.append(result)
    console.print(machine_table(machine, args.server))
    console.print(summary_table(results))
    for result in results:
        console.print(breakdown_table(result))
    console.print(checks_table(results))
    for note in NOTES:
        console.print(f"[dim]- {note}[/]")
    for line in target_lines(results):
        style = "bold green" if line.startswith("PASS") else "bold red"
        console.print(f"[{style}]{line}[/]")
    write_json(args.json, args, machine, results)
    console.print(f"figures written to {args.json}")
    return results


def _step(console: Console, label: str, work: Callable[[], T]) -> T:
    with console.status(f"{label} ..."):
        seconds, result = timed(work)
    console.print(f"{label}: {seconds:.1f} s")
    return result


if __name__ == "__main__":
    sys.exit(main())
