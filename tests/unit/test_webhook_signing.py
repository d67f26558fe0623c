"""Standard Webhooks signing, the JSON body, and the verdict on `webhooks.secret`."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.app.checks import validate
from engine.app.webhook_secret import SHIPPED_SECRETS, require_webhook_secret, verdict
from engine.config import Config, load_config
from engine.delivery.render import Renderer, email_context
from engine.delivery.signing import secret_key, signature, signed_headers, webhook_id
from engine.delivery.webhook_body import render_body
from engine.errors import ConfigError, LifecycleError, TemplateError
from engine.rules.language import RuleSet, load_rules
from engine.rules.webhooks import WebhookPolicy

ROOT = Path(__file__).resolve().parents[2]
GOOD = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_the_signature_is_the_specs_own_example() -> None:
    # The example of the Standard Webhooks specification and its reference libraries.
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert (
        signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )
    headers = signed_headers(key, "msg_1", 7, body)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == "7"
    assert headers["webhook-signature"] == signature(key, "msg_1", 7, body)
    assert signature(key, "msg_1", 8, body) != headers["webhook-signature"]


def test_the_id_names_the_ledger_row_and_no_user() -> None:
    assert webhook_id("pql", "account:acme", "") == webhook_id("pql", "account:acme", "")
    ids = {
        webhook_id("pql", "account:acme", ""),
        webhook_id("pql", "account:acme", "#2"),
        webhook_id("pql", "account:other", ""),
        webhook_id("other", "account:acme", ""),
    }
    assert len(ids) == 4
    assert all(i.startswith("msg_") and "acme" not in i for i in ids)


def context() -> dict[str, object]:
    return email_context(
        user={"id": "u1", "email": "u1@x.io", "traits": {"company": 'A "B" <C>'}},
        account=None,
        inviter=None,
        rule_id="r",
        rule_description="",
        anchor_name="signed_up",
        anchor_at=datetime(2026, 1, 1, tzinfo=UTC),
        anchor_properties={},
        guide_id=None,
        guide_expires_at=None,
        links={},
        brand={},
        unsubscribe_url="u",
    )


def renderer(tmp_path: Path, body: str) -> Renderer:
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "body.json").write_text(body)
    return Renderer(tmp_path)


def test_the_body_is_the_parsed_json_written_compactly(tmp_path: Path) -> None:
    body = '{\n  "company": {{ user.traits.company | tojson }},\n  "n": 1\n}\n'
    sent = render_body(renderer(tmp_path, body), "hook", context())
    assert sent == b'{"company":"A \\"B\\" <C>","n":1}'
    assert json.loads(sent) == {"company": 'A "B" <C>', "n": 1}


def test_a_body_that_is_not_json_is_an_error_naming_the_template(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"hook/body\.json: the body is not JSON \(.* line 1"):
        render_body(renderer(tmp_path, '{"c": {{ user.traits.company }}}'), "hook", context())


def test_check_renders_webhook_bodies_and_names_the_broken_one(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, body in (("good", '{"id": {{ user.id | tojson }}}'), ("bad", "{{ user.id }}x")):
        (templates / name).mkdir()
        (templates / name / "body.json").write_text(body)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules:\n  - id: a\n    send: {webhook: {url: 'https://x.example/', body: good}}\n"
    )
    config = Config.model_validate({"base_dir": tmp_path})
    result, rules, _ = validate(config)
    assert rules is not None
    assert result.templates == 2
    [problem] = result.problems
    assert "bad/body.json: the body is not JSON" in str(problem)


def rules_posting_to(tmp_path: Path, url: str) -> RuleSet:
    (tmp_path / "r.yaml").write_text(
        f"rules:\n  - id: a\n    send: {{webhook: {{url: '{url}', body: b}}}}\n"
    )
    return load_rules(tmp_path, default_expires=timedelta(days=1), webhooks=WebhookPolicy())


def config(secret: str, **hooks: object) -> Config:
    return Config.model_validate({"webhooks": {"secret": secret, **hooks}})


def test_a_strong_secret_is_fine_and_no_webhook_rule_needs_none(tmp_path: Path) -> None:
    rules = rules_posting_to(tmp_path, "https://crm.example/")
    assert verdict(config(GOOD), rules).severity is None
    assert verdict(config(""), RuleSet(())).severity is None


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("", "webhooks.secret is not set"),
        (next(iter(SHIPPED_SECRETS)), "the example secret shipped with lifecycle"),
        ("whsec_" + base64.b64encode(b"short").decode(), "5 bytes long, shorter than 24"),
    ],
)
def test_a_weak_secret_is_refused_outside_development(
    tmp_path: Path, secret: str, problem: str
) -> None:
    rules = rules_posting_to(tmp_path, "https://crm.example/")
    with pytest.raises(LifecycleError, match=problem) as caught:
        require_webhook_secret(config(secret), rules)
    assert "LIFECYCLE_WEBHOOKS__SECRET" in str(caught.value)
    if secret:
        assert secret not in str(caught.value)


def test_a_weak_secret_is_a_warning_for_loopback_or_an_explicit_dev_setting(
    tmp_path: Path,
) -> None:
    shipped = next(iter(SHIPPED_SECRETS))
    loopback = rules_posting_to(tmp_path, "http://127.0.0.1:9000/")
    result = require_webhook_secret(config(shipped), loopback)
    assert result.severity == "warning"
    assert "loopback" in result.message
    remote = rules_posting_to(tmp_path, "https://crm.example/")
    allowed = require_webhook_secret(config(shipped, allow_insecure_dev_secret=True), remote)
    assert allowed.severity == "warning"
    # No secret at all signs nothing, development or not.
    assert verdict(config(""), loopback).severity == "error"


def test_a_secret_of_the_wrong_form_fails_the_config_without_quoting_it(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("webhooks:\n  secret: not-a-whsec-secret\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "config.yaml", environ={})
    message = str(caught.value)
    assert "webhooks.secret" in message
    assert "whsec_" in message
    assert "not-a-whsec-secret" not in message
    environ = {"LIFECYCLE_WEBHOOKS__SECRET": "whsec_!!!notbase64"}
    with pytest.raises(ConfigError) as caught:
        load_config(ROOT / "config.yaml", environ=environ)
    assert "!!!notbase64" not in str(caught.value)
