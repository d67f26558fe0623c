"""Wiring: from a validated config to a store, rules, renderer, transport and runner.
The CLI and the daemon build the engine here, so both run exactly the same thing."""

from __future__ import annotations

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
from engine.store import Store, connect, migrate
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
    """Connect and apply pending migrations (the schema is created on first use)."""
    engine = connect(config.database_url, echo=config.database.echo)
    try:
        migrate(engine)
    except OperationalError as exc:
        engine.dispose()
        # The first contact with the database: say which one, and where the setting lives.
        where = engine.url.render_as_string(hide_password=True)
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise LifecycleError(
            f"cannot open the database {where}: {reason} "
            "(set database.url in the config or LIFECYCLE_DATABASE__URL)"
        ) from None
    return Store(engine)


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
