"""`lifecycle check`: the config, every rule and every template, all problems at once; then
the rules' semantic lint (`engine.rules.lint`): rules that can never fire, and warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from engine.app.signing_key import verdict
from engine.app.webhook_secret import verdict as webhook_verdict
from engine.config import Config
from engine.delivery.render import Renderer, email_context
from engine.delivery.webhook_body import render_body, webhook_names
from engine.errors import Problem, RuleError, TemplateError
from engine.rules.language import RuleSet, load_rules
from engine.rules.lint import Finding, lint
from engine.store import Store, connect, creates_file

SAMPLE_AT = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Sample:
    """A sample recipient: the user, and their account and inviter as the store's directory
    would find them (None: no account, or no such inviter)."""

    user: dict[str, Any]
    account: dict[str, Any] | None = None
    inviter: dict[str, Any] | None = None


SAMPLES: tuple[Sample, ...] = (
    Sample(
        user={
            "id": "sample-full",
            "email": "ana.garcia@northwind.example",
            "persona": "data_engineer",
            "signup_source": "organic",
            "signed_up_at": SAMPLE_AT,
            "timezone": "Europe/Madrid",
            "account_id": "acct-1",
            "invited_by": "u-0",
            "traits": {"first_name": "Ana", "company": "Northwind", "plan": "trial"},
        },
        account={
            "id": "acct-1",
            "traits": {"name": "Northwind", "plan": "trial"},
            "member_count": 3,
        },
        inviter={"id": "u-0", "email": "marta@northwind.example", "traits": {"name": "Marta Ruiz"}},
    ),
    # Invited into an account whose group call has not arrived, by a user never identified.
    Sample(
        user={
            "id": "sample-new-account",
            "email": "y@example.com",
            "persona": None,
            "signup_source": "invited",
            "signed_up_at": SAMPLE_AT,
            "timezone": None,
            "account_id": "acct-2",
            "invited_by": "u-unknown",
            "traits": {},
        },
        account={"id": "acct-2", "traits": {}, "member_count": 1},
    ),
    Sample(
        user={
            "id": "sample-sparse",
            "email": "x@example.com",
            "persona": None,
            "signup_source": None,
            "signed_up_at": None,
            "timezone": None,
            "account_id": None,
            "invited_by": None,
            "traits": {},
        },
    ),
)


@dataclass
class CheckResult:
    problems: list[Problem] = field(default_factory=list)
    rules: int = 0
    templates: int = 0
    findings: list[Finding] = field(default_factory=list)  # the lint's, when the rules load

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def ok(self) -> bool:
        """No problem and no lint error: warnings never fail a check."""
        return not self.problems and not self.errors


def check(config: Config) -> CheckResult:
    """`validate`, then the lint of the rules it loaded. The lint reads the database only
    when an enabled rule reads accounts (whether it holds any), and never writes to it."""
    result, rules, _ = validate(config)
    key = verdict(config, config.api.host)
    if key.severity is not None:
        result.findings.append(Finding(key.severity, "secret-key", key.message))
    if rules is None:
        return result
    hooks = webhook_verdict(config, rules)
    if hooks.severity is not None:
        result.findings.append(Finding(hooks.severity, "webhook-secret", hooks.message))
    has_accounts: bool | None = None
    if any(rule.uses_account for rule in rules.enabled):
        try:
            has_accounts = database_has_accounts(config)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            result.findings.append(
                Finding(
                    "warning",
                    "database-unreadable",
                    f"could not read the database ({reason}): skipped the check that the "
                    "rules reading accounts have accounts to read",
                )
            )
    result.findings.extend(
        lint(
            rules,
            daily_cap=config.mail.daily_cap,
            quiet_hours=config.mail.quiet_hours,
            has_accounts=has_accounts,
        )
    )
    return result


def database_has_accounts(config: Config) -> bool:
    """Whether the configured database holds any account. A SQLite file that does not exist
    yet holds none, and is not created; nothing is migrated."""
    url = config.database_url
    if creates_file(url):
        return False
    engine = connect(url, echo=config.database.echo)
    try:
        return Store(engine).reads.has_accounts()
    finally:
        engine.dispose()


def validate(
    config: Config, renderer: Renderer | None = None
) -> tuple[CheckResult, RuleSet | None, Renderer]:
    """The check, plus what it loaded: hot reload swaps in exactly what was checked, so a
    file edited between checking and loading can never slip through unchecked."""
    result = CheckResult()
    renderer = renderer or Renderer(config.templates_dir)
    rules: RuleSet | None = None
    names = renderer.names()
    result.templates = len(names)
    if not config.templates_dir.is_dir():
        result.problems.append(Problem("templates directory not found", str(config.templates_dir)))
    hooks = webhook_names(config.templates_dir)
    result.templates += len(hooks)
    for name in sorted(hooks):
        result.problems.extend(_render_webhook_samples(renderer, name, config))
    for name in sorted(names):
        for locale in [None, *renderer.locales(name)]:
            result.problems.extend(_render_samples(renderer, name, config, locale))
        result.findings.extend(_missing_translations(renderer, name))
    try:
        rules = load_rules(
            config.rules_dir,
            default_expires=config.defaults.expires,
            templates=names,
            activation_event=config.reports.activation_event,
            webhooks=config.webhook_policy(webhook_names(config.templates_dir)),
        )
        result.rules = len(rules.rules)
    except RuleError as exc:
        result.problems.extend(exc.problems)
    return result, rules, renderer


def _missing_translations(renderer: Renderer, name: str) -> list[Finding]:
    return [
        Finding(
            "warning",
            "missing-translation",
            f"translation {path.parent.name!r} of template {name!r} has no {path.name}: "
            "that part is sent from the next fallback (base language, else the default)",
            file=str(renderer.directory / path),
        )
        for path in map(Path, renderer.missing_translations(name))
    ]


def _render_webhook_samples(renderer: Renderer, name: str, config: Config) -> list[Problem]:
    """A webhook body against every sample user: it must render, and be JSON."""
    for sample in SAMPLES:
        try:
            render_body(renderer, name, _sample_context(sample, config, "sample_guide"))
        except TemplateError as exc:
            return [Problem(f"{config.templates_dir}/{exc} (sample user {sample.user['id']!r})")]
    return []


def _sample_context(sample: Sample, config: Config, guide: str | None) -> dict[str, Any]:
    return email_context(
        user=sample.user,
        account=sample.account,
        inviter=sample.inviter,
        rule_id="sample-rule",
        rule_description="A sample rule",
        anchor_name="workflow_started",
        anchor_at=SAMPLE_AT,
        anchor_properties={"direction": "ingest"},
        guide_id=guide,
        guide_expires_at=SAMPLE_AT + timedelta(days=7) if guide else None,
        links=config.links,
        brand=config.brand.model_dump(),
        unsubscribe_url="https://example.com/unsubscribe/sample",
    )


def _render_samples(
    renderer: Renderer, name: str, config: Config, locale: str | None = None
) -> list[Problem]:
    """Every sample user, with and without a guide, in `locale` (None: the default)."""
    for sample in SAMPLES:
        user = sample.user
        for guide in ("sample_guide", None):
            context = _sample_context(sample, config, guide)
            try:
                rendered = renderer.render(name, context, locale)
            except TemplateError as exc:
                where = f"{config.templates_dir}/{exc}"
                return [Problem(f"{where} (sample user {user['id']!r})")]
            missing = _missing_unsubscribe(rendered.text, rendered.html, context)
            if missing:
                translated = renderer.locales(name).get(locale) if locale else None
                folder = config.templates_dir / name / (translated or "")
                return [Problem(missing, str(folder))]
    return []


def _missing_unsubscribe(text: str, html: str, context: dict[str, Any]) -> str | None:
    """Every email must carry a visible unsubscribe link in both bodies."""
    url = str(context["unsubscribe_url"])
    parts = [part for part, body in (("body.txt", text), ("body.html", html)) if url not in body]
    if parts:
        return f"no visible unsubscribe link ({{{{ unsubscribe_url }}}}) in {' and '.join(parts)}"
    return None
