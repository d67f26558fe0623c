"""Whether `webhooks.secret` can sign webhooks: a receiver trusts a request because only the
engine knows the secret, so the example config.yaml ships, an empty or a short one are
refused outside development, as `api.secret_key` is (engine.app.signing_key).

Development is the explicit `webhooks.allow_insecure_dev_secret: true`, or every enabled
webhook rule posting to a loopback address: then no request can reach anyone but this
machine. Without any webhook rule the secret is never used, and never judged."""

from __future__ import annotations

from urllib.parse import urlsplit

from engine.app.signing_key import KeyVerdict
from engine.config import Config
from engine.delivery.signing import secret_key
from engine.errors import LifecycleError
from engine.rules.language import RuleSet
from engine.rules.webhooks import is_loopback

MIN_SECRET_BYTES = 24  # what Standard Webhooks' own libraries generate, at the least
# The secret config.yaml ships: public, so anyone can sign with it.
SHIPPED_SECRETS = frozenset({"whsec_ZGV2LW9ubHktd2ViaG9vay1zZWNyZXQtY2hhbmdlLW1l"})
SECRET_ENV = "LIFECYCLE_WEBHOOKS__SECRET"
GENERATE = (
    "python -c 'import base64, secrets; "
    'print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())\''
)


def weakness(secret: str) -> str | None:
    """Why the secret is unfit to sign webhooks, or None. Never quotes it."""
    if not secret:
        return "webhooks.secret is not set"
    if secret in SHIPPED_SECRETS:
        return "webhooks.secret is the example secret shipped with lifecycle"
    size = len(secret_key(secret))
    if size < MIN_SECRET_BYTES:
        return f"webhooks.secret is {size} bytes long, shorter than {MIN_SECRET_BYTES}"
    return None


def development(config: Config, rules: RuleSet) -> str | None:
    if config.webhooks.allow_insecure_dev_secret:
        return "webhooks.allow_insecure_dev_secret is set"
    hosts = [urlsplit(url).hostname for url in _webhook_urls(rules)]
    if hosts and all(is_loopback(host) for host in hosts):
        return "every webhook rule posts to a loopback address"
    return None


def verdict(config: Config, rules: RuleSet) -> KeyVerdict:
    if not _webhook_urls(rules):
        return KeyVerdict(None)
    problem = weakness(config.webhooks.secret)
    if problem is None:
        return KeyVerdict(None)
    why = "receivers cannot trust the signatures"
    allowed = development(config, rules)
    if allowed is not None and config.webhooks.secret:
        return KeyVerdict("warning", f"{problem}: {why}; accepted for development, as {allowed}")
    return KeyVerdict(
        "error",
        f"{problem}: {why}. Set {SECRET_ENV} to a random secret ({GENERATE}), or (with a "
        "secret) set webhooks.allow_insecure_dev_secret: true for development",
    )


def require_webhook_secret(config: Config, rules: RuleSet) -> KeyVerdict:
    """Refuse to dispatch (`run`, `tick`) webhooks no receiver should trust; the warning,
    if any, is the caller's to log."""
    result = verdict(config, rules)
    if result.severity == "error":
        raise LifecycleError(f"refusing to send webhooks: {result.message}")
    return result


def _webhook_urls(rules: RuleSet) -> list[str]:
    return [rule.send.webhook.url for rule in rules.enabled if rule.send.webhook is not None]
