"""`send.webhook` in the rule language: where a rule may POST (https; http only to loopback or
an allowed host), named endpoints, headers the engine owns, and every refusal naming the
file, line and rule; the default pack's PQL alert loads."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.config import load_config
from engine.delivery.webhook_body import webhook_names
from engine.errors import RuleError
from engine.rules.language import RuleSet, load_rules
from engine.rules.webhooks import WebhookPolicy

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, send: str, policy: WebhookPolicy | None = None, **rule: str) -> RuleSet:
    extra = "".join(f"    {key}: {value}\n" for key, value in rule.items())
    (tmp_path / "r.yaml").write_text(f"rules:\n  - id: hook\n{extra}    send:\n{send}")
    return load_rules(tmp_path, default_expires=timedelta(days=1), webhooks=policy)


def errors(
    tmp_path: Path, send: str, policy: WebhookPolicy | None = None, **rule: str
) -> list[str]:
    with pytest.raises(RuleError) as caught:
        load(tmp_path, send, policy, **rule)
    return [str(problem) for problem in caught.value.problems]


def hook(url: str, extra: str = "") -> str:
    return f"      webhook:\n        url: {url}\n        body: alert\n{extra}"


@pytest.mark.parametrize(
    "url",
    [
        "https://crm.example/hooks/pql",
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]:8080/hook",
    ],
)
def test_https_anywhere_and_plain_http_to_loopback(tmp_path: Path, url: str) -> None:
    [rule] = load(tmp_path, hook(url)).rules
    assert rule.send.webhook is not None
    assert rule.send.webhook.url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://crm.example/hook", "plain http to crm.example: use https, or allow the host"),
        ("ftp://crm.example/hook", "must be an https:// URL with a host"),
        ("https:///nohost", "must be an https:// URL with a host"),
        ("https://user:pw@crm.example/", "must not carry credentials"),
        ("https://crm.example:99999/", "is not a URL"),
    ],
)
def test_other_urls_are_refused_naming_the_rule_and_line(
    tmp_path: Path, url: str, message: str
) -> None:
    [problem] = errors(tmp_path, hook(url))
    assert problem.startswith(f"{tmp_path / 'r.yaml'}:4: rule 'hook': send.webhook.url: ")
    assert message in problem
    assert "pw" not in problem


def test_a_host_the_config_allows_may_take_plain_http(tmp_path: Path) -> None:
    policy = WebhookPolicy(allow_http=frozenset({"crm.internal"}))
    [rule] = load(tmp_path, hook("http://crm.internal/hook"), policy).rules
    assert rule.send.webhook is not None


def test_an_endpoint_name_is_resolved_from_the_config_and_never_quoted(tmp_path: Path) -> None:
    secret = "https://hooks.slack.com/services/T0/B0/secretpart"
    policy = WebhookPolicy(endpoints={"sales": secret, "plain": "http://10.0.0.9/secretpart"})
    [rule] = load(tmp_path, hook("$sales"), policy).rules
    assert rule.send.webhook is not None
    assert rule.send.webhook.url == secret
    [problem] = errors(tmp_path, hook("$plain"), policy)
    assert "$plain is plain http to 10.0.0.9" in problem
    assert "secretpart" not in problem
    [problem] = errors(tmp_path, hook("$nope"), policy)
    assert "no endpoint 'nope' in webhooks.endpoints (known: plain, sales)" in problem


def test_a_disabled_rule_may_wait_for_its_endpoint(tmp_path: Path) -> None:
    [rule] = load(tmp_path, hook("$later"), enabled="false").rules
    assert rule.send.webhook is not None
    assert rule.send.webhook.url == "$later"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ("{webhook-signature: x}", "'webhook-signature' is set by the engine"),
        ("{Content-Type: text/plain}", "'Content-Type' is set by the engine"),
        ('{X-A: "a\\r\\nX-B: b"}', "send.webhook.headers.X-A: a line break"),
        ("{'bad header': x}", "must match"),
    ],
)
def test_headers_the_engine_owns_or_that_break_the_request_are_refused(
    tmp_path: Path, headers: str, message: str
) -> None:
    problems = errors(tmp_path, hook("https://x.example/", f"        headers: {headers}\n"))
    assert any(message in p for p in problems), problems


def test_a_webhook_and_an_email_do_not_share_a_rule(tmp_path: Path) -> None:
    [problem] = errors(tmp_path, hook("https://x.example/") + "      email: welcome\n")
    assert "send.webhook and send.email cannot share a rule" in problem


def test_a_missing_body_template_is_named(tmp_path: Path) -> None:
    policy = WebhookPolicy(templates={"slack"})
    [problem] = errors(tmp_path, hook("https://x.example/"), policy)
    assert "send.webhook.body: template 'alert' does not exist" in problem
    assert "known: slack" in problem


def test_the_default_packs_pql_alert_loads_and_waits_for_its_endpoint() -> None:
    config = load_config(ROOT / "config.yaml", environ={})
    rules = load_rules(
        ROOT / "rules",
        default_expires=config.defaults.expires,
        activation_event=config.reports.activation_event,
        webhooks=config.webhook_policy(webhook_names(ROOT / "templates")),
    )
    rule = rules.get("pql-account-alert")
    assert not rule.enabled
    assert rule.once_per == "account"
    assert rule.when.anchored_on_account
    assert rule.expires == config.reports.trial_length  # never after the trial
    assert [item.event for item in rule.when.account_done] == [config.reports.activation_event]
    assert rule.send.webhook is not None
    assert rule.send.webhook.body == "slack_pql_alert"
