"""Wiring: from a validated config to a store, rules, renderer, transport and runner.
The CLI and the daemon build the engine here, so both run exactly the same thing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.exc import OperationalError

from engine.config import Config
from engine.delivery.mail import ConsoleTransport, FileOutbox, MailTransport
from engine.delivery.render import Renderer
from engine.delivery.smtp import SmtpTransport
from engine.delivery.webhook_body import webhook_names
from engine.errors import LifecycleError
from engine.rules.language import RuleSet, load_rules
from engine.runner import Runner
from engine.store import Schema, Store, connect, creates_file, migrate
from engine.telemetry.metrics import Metrics


@dataclass
class App:
    config: Config
    store: Store
    renderer: Renderer
    rules: RuleSet
    runner: Runner
    metrics: Metrics = field(default_factory=Metrics)  # shared by the runner and the API


def make_transport(config: Config) -> MailTransport:
    if config.mail.transport == "console":
        return ConsoleTransport()
    if config.mail.transport == "smtp":
        smtp = config.mail.smtp
        if smtp.ca_file is not None:  # relative to the config file, like every path
            smtp = smtp.model_copy(update={"ca_file": config.resolve(smtp.ca_file)})
        return SmtpTransport(smtp)
    return FileOutbox(config.outbox_dir)


def open_store(config: Config) -> Store:
    """Connect and apply pending migrations (the schema is created on first use), the
    team's own (`database.migrations`) included."""
    engine = connect(config.database_url, echo=config.database.echo)
    try:
        migrate(engine, config.migration_dirs)
    except OperationalError as exc:
        engine.dispose()
        raise _cannot_open(engine.url.render_as_string(hide_password=True), exc) from None
    except LifecycleError:
        engine.dispose()
        raise
    return Store(engine)


@contextmanager
def open_schema(config: Config, *, read_only: bool = False) -> Iterator[Schema]:
    """The database's schema without migrating it first (`lifecycle db`); the connection is
    checked at once, so that a wrong URL fails as clearly as it does for `open_store`.
    `read_only`: a SQLite file that is not there yet is not created just to say it is empty."""
    url = config.database_url
    engine = connect("sqlite://" if read_only and creates_file(url) else url)
    try:
        try:
            with engine.connect():
                pass
        except OperationalError as exc:
            raise _cannot_open(engine.url.render_as_string(hide_password=True), exc) from None
        yield Schema(engine, config.migration_dirs)
    finally:
        engine.dispose()


def _cannot_open(where: str, exc: OperationalError) -> LifecycleError:
    # The first contact with the database: say which one, and where the setting lives.
    reason = str(exc.orig or exc).strip().splitlines()[0]
    return LifecycleError(
        f"cannot open the database {where}: {reason} "
        "(set database.url in the config or LIFECYCLE_DATABASE__URL)"
    )


def load_rule_set(config: Config, renderer: Renderer) -> RuleSet:
    return load_rules(
        config.rules_dir,
        default_expires=config.defaults.expires,
        templates=renderer.names(),
        activation_event=config.reports.activation_event,
        webhooks=config.webhook_policy(webhook_names(config.templates_dir)),
    )


def open_app(config: Config, *, transport: MailTransport | None = None) -> App:
    renderer = Renderer(config.templates_dir)
    rules = load_rule_set(config, renderer)  # before touching the database: fail fast
    store = open_store(config)
    metrics = Metrics()
    runner = Runner(
        store=store,
        rules=rules,
        renderer=renderer,
        transport=transport or make_transport(config),
        config=config,
        metrics=metrics,
    )
    return App(config, store, renderer, rules, runner, metrics)
