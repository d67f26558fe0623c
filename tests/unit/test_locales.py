"""Localised templates: locale tags, the fallback chain (es-MX -> es -> the default), one part
at a time, and what `lifecycle check` says of a translation that lacks a part."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from engine.app.checks import validate
from engine.config import Config
from engine.daemon.reload import frozen_renderer
from engine.delivery.locales import fallbacks, missing_parts, normalize, user_locale
from engine.delivery.render import PARTS, Renderer, email_context
from engine.errors import TemplateError
from tests.unit.test_render import write_template

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("tag", "normal"),
    [
        ("es", "es"),
        ("ES", "es"),
        ("es-mx", "es-MX"),
        ("es_MX", "es-MX"),
        (" pt_br ", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("es-419", "es-419"),
        ("", None),
        ("e", None),
        ("../es", None),
        ("es/MX", None),
        ("x" * 40, None),
        (42, None),
        (None, None),
    ],
)
def test_tags_are_normalised_and_anything_else_is_no_locale(
    tag: object, normal: str | None
) -> None:
    assert normalize(tag) == normal


def test_the_chain_goes_from_the_most_specific_to_the_language() -> None:
    assert fallbacks("zh_Hant_TW") == ["zh-Hant-TW", "zh-Hant", "zh"]
    assert fallbacks("es-MX") == ["es-MX", "es"]
    assert fallbacks("not a locale") == []
    assert fallbacks(None) == []


def test_the_locale_is_the_users_trait() -> None:
    assert user_locale({"traits": {"locale": "es_mx"}}) == "es-MX"
    assert user_locale({"traits": {"locale": ["es"]}}) is None
    assert user_locale({"traits": {}}) is None
    assert user_locale({}) is None


def context(**traits: Any) -> dict[str, Any]:
    return email_context(
        user={"id": "u1", "email": "u1@example.com", "traits": {"first_name": "Ana", **traits}},
        account=None,
        inviter=None,
        rule_id="r",
        rule_description="",
        anchor_name="signed_up",
        anchor_at=NOW,
        anchor_properties={},
        guide_id=None,
        guide_expires_at=None,
        links={},
        brand={"name": "Airtouch"},
        unsubscribe_url="https://example.com/u/t",
    )


def translate(template: Path, locale: str, **parts: str) -> None:
    (template / locale).mkdir()
    for part, text in parts.items():
        (template / locale / part).write_text(text, encoding="utf-8")


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    template = write_template(
        tmp_path, "welcome", subject="Welcome", text="Hi {{ user.first_name }}"
    )
    translate(
        template,
        "es",
        **{
            "subject.txt": "Bienvenida",
            "body.txt": "Hola {{ user.first_name }}",
            "body.html": "<p>Hola</p>",
        },
    )
    translate(template, "es-MX", **{"subject.txt": "¡Bienvenida, güey!"})
    return tmp_path


@pytest.mark.parametrize(
    ("locale", "subject", "text", "html"),
    [
        (None, "Welcome", "Hi Ana\n", "<p>Hi Ana</p>\n"),
        ("es", "Bienvenida", "Hola Ana\n", "<p>Hola</p>"),
        ("es-ES", "Bienvenida", "Hola Ana\n", "<p>Hola</p>"),  # no es-ES: the base language
        ("es-MX", "¡Bienvenida, güey!", "Hola Ana\n", "<p>Hola</p>"),  # a part falls back alone
        ("fr-FR", "Welcome", "Hi Ana\n", "<p>Hi Ana</p>\n"),  # no French at all: the default
        ("../../etc", "Welcome", "Hi Ana\n", "<p>Hi Ana</p>\n"),
    ],
)
def test_each_part_comes_from_the_most_specific_translation_that_has_it(
    templates: Path, locale: str | None, subject: str, text: str, html: str
) -> None:
    rendered = Renderer(templates).render("welcome", context(), locale)
    assert (rendered.subject, rendered.text, rendered.html) == (subject, text, html)


def test_a_frozen_renderer_resolves_from_its_snapshot_not_the_disk(templates: Path) -> None:
    renderer = frozen_renderer(templates)
    (templates / "welcome" / "es-MX" / "body.txt").write_text("unvalidated {{ x.y }}")
    rendered = renderer.render("welcome", context(), "es-MX")  # a reload has not swapped it in
    assert rendered.text == "Hola Ana\n"


def test_a_translation_is_no_template_of_its_own(templates: Path) -> None:
    assert Renderer(templates).names() == {"welcome"}
    assert Renderer(templates).locales("welcome") == {"es": "es", "es-MX": "es-MX"}


def test_a_broken_translation_names_its_own_file(templates: Path) -> None:
    (templates / "welcome" / "es" / "body.txt").write_text("Hola {{ user.nope.x }}")
    with pytest.raises(TemplateError, match=r"welcome/es/body\.txt:1"):
        Renderer(templates).render("welcome", context(), "es-MX")
    Renderer(templates).render("welcome", context(), "fr")  # the default still renders


def test_missing_parts_are_those_the_default_has(templates: Path) -> None:
    assert Renderer(templates).missing_translations("welcome") == [
        "welcome/es-MX/body.txt",
        "welcome/es-MX/body.html",
    ]
    files = {"w/subject.txt", "w/body.txt", "w/fr/subject.txt", "w/notes/x.txt"}
    assert missing_parts("w", files, PARTS) == ["w/fr/body.txt"]


def config_for(tmp_path: Path, templates: Path) -> Config:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "rules:\n  - id: hello\n    send: {email: welcome}\n", encoding="utf-8"
    )
    return Config.model_validate(
        {"paths": {"rules": str(rules), "templates": str(templates)}, "base_dir": tmp_path}
    )


def test_check_warns_of_each_missing_translation_by_file(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    template = write_template(
        templates, "welcome", text="Hi {{ unsubscribe_url }}", html="{{ unsubscribe_url }}"
    )
    translate(template, "es", **{"subject.txt": "Hola", "body.txt": "Baja: {{ unsubscribe_url }}"})
    result, _, _ = validate(config_for(tmp_path, templates))
    assert result.problems == []
    [warning] = [f for f in result.warnings if f.code == "missing-translation"]
    assert warning.file == str(template / "es" / "body.html")
    assert str(warning).startswith(f"{template / 'es' / 'body.html'}: warning: ")


def test_check_renders_every_translation(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    template = write_template(
        templates, "welcome", text="Hi {{ unsubscribe_url }}", html="{{ unsubscribe_url }}"
    )
    translate(
        template,
        "ko",
        **{
            "subject.txt": "{{ user.traits.missing.x }}",
            "body.txt": "{{ unsubscribe_url }}",
            "body.html": "{{ unsubscribe_url }}",
        },
    )
    translate(
        template,
        "ar",
        **{"subject.txt": "مرحبا", "body.txt": "لا رابط", "body.html": "{{ unsubscribe_url }}"},
    )
    result, _, _ = validate(config_for(tmp_path, templates))
    messages = [str(p) for p in result.problems]
    assert any("welcome/ko/subject.txt:1" in m for m in messages), messages
    assert any(
        m.startswith(str(template / "ar")) and "body.txt" in m and "unsubscribe" in m
        for m in messages
    ), messages
