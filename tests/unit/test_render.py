"""Email rendering: the sandboxed Jinja2 environment, the template layout and email_context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape

from engine.config import load_config
from engine.delivery.render import (
    RenderedEmail,
    Renderer,
    email_context,
    first_name,
    template_names,
)
from engine.delivery.tokens import unsubscribe_url
from engine.errors import TemplateError

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://app.example/unsubscribe/abc.def"


def write_template(
    directory: Path,
    name: str,
    *,
    subject: str = "Hello {{ user.first_name }}",
    text: str = "Hi {{ user.first_name }}\n",
    html: str = "<p>Hi {{ user.first_name }}</p>\n",
) -> Path:
    folder = directory / name
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text(subject, encoding="utf-8")
    (folder / "body.txt").write_text(text, encoding="utf-8")
    (folder / "body.html").write_text(html, encoding="utf-8")
    return folder


def make_context(
    *,
    user: dict[str, Any] | None = None,
    account: dict[str, Any] | None = None,
    inviter: dict[str, Any] | None = None,
    guide_id: str | None = None,
    links: dict[str, str] | None = None,
    unsubscribe: str = UNSUBSCRIBE,
) -> dict[str, Any]:
    return email_context(
        user=user
        if user is not None
        else {
            "id": "u1",
            "email": "ada@example.com",
            "persona": "data_engineer",
            "signup_source": "organic",
            "signed_up_at": NOW - timedelta(days=1),
            "timezone": "Europe/London",
            "traits": {"first_name": "Ada", "company": "Analytical Engines"},
        },
        account=account,
        inviter=inviter,
        rule_id="welcome",
        rule_description="Welcome new users",
        anchor_name="signed_up",
        anchor_at=NOW - timedelta(days=1),
        anchor_properties={},
        guide_id=guide_id,
        guide_expires_at=NOW + timedelta(days=7) if guide_id else None,
        links=links or {},
        brand={"name": "Airtouch", "postal_address": "1 Main St", "support_email": "s@x.example"},
        unsubscribe_url=unsubscribe,
    )


# ---- rendering -------------------------------------------------------------------------


def test_render_returns_subject_text_and_html(tmp_path: Path) -> None:
    write_template(
        tmp_path,
        "welcome",
        subject="  Welcome,\n   {{ user.first_name }}!  \n\n",
        text="\n\nHi {{ user.first_name }},\nthanks.\n\n\n",
        html="<p>Hi {{ user.first_name }}</p>\n",
    )
    rendered = Renderer(tmp_path).render("welcome", make_context())
    assert rendered == RenderedEmail(
        subject="Welcome, Ada!",
        text="Hi Ada,\nthanks.\n",
        html="<p>Hi Ada</p>\n",
    )


def test_subject_is_one_line_with_whitespace_collapsed(tmp_path: Path) -> None:
    write_template(tmp_path, "t", subject="\tA\n\nB   C\r\n  D  ")
    subject = Renderer(tmp_path).render("t", make_context()).subject
    assert subject == "A B C D"
    assert "\n" not in subject
    assert "\r" not in subject


def test_html_is_autoescaped_and_text_is_not(tmp_path: Path) -> None:
    write_template(
        tmp_path,
        "t",
        subject="About {{ user.traits.company }}",
        text="Company: {{ user.traits.company }}\n",
        html="<p>Company: {{ user.traits.company }}</p>\n",
    )
    context = make_context(user={"id": "u1", "traits": {"company": "<b>&"}})
    rendered = Renderer(tmp_path).render("t", context)
    assert rendered.html == "<p>Company: &lt;b&gt;&amp;</p>\n"
    assert "<b>&" not in rendered.html
    assert rendered.text == "Company: <b>&\n"
    assert rendered.subject == "About <b>&"


def test_html_template_markup_itself_is_not_escaped(tmp_path: Path) -> None:
    write_template(tmp_path, "t", html='<a href="{{ unsubscribe_url }}">Unsubscribe</a>')
    context = make_context(unsubscribe="https://x.example/u?a=1&b=2")
    html = Renderer(tmp_path).render("t", context).html
    assert html == '<a href="https://x.example/u?a=1&amp;b=2">Unsubscribe</a>'


@pytest.mark.parametrize("part", ["subject.txt", "body.txt", "body.html"])
def test_missing_variable_raises_template_error_naming_part_and_variable(
    tmp_path: Path, part: str
) -> None:
    parts = {"subject.txt": "Subject", "body.txt": "Text\n", "body.html": "<p>Html</p>\n"}
    parts[part] = "first line\nsecond {{ no_such_variable }}\n"
    write_template(
        tmp_path,
        "broken",
        subject=parts["subject.txt"],
        text=parts["body.txt"],
        html=parts["body.html"],
    )
    with pytest.raises(TemplateError) as info:
        Renderer(tmp_path).render("broken", make_context())
    message = str(info.value)
    assert f"broken/{part}:2" in message
    assert "no_such_variable" in message


def test_missing_attribute_of_a_known_variable_is_an_error(tmp_path: Path) -> None:
    write_template(tmp_path, "t", text="{{ user.traits.no_such_trait }}\n")
    with pytest.raises(TemplateError, match="no_such_trait"):
        Renderer(tmp_path).render("t", make_context())


def test_missing_variable_in_a_condition_is_an_error(tmp_path: Path) -> None:
    write_template(tmp_path, "t", text="{% if nope %}yes{% endif %}\n")
    with pytest.raises(TemplateError, match="nope"):
        Renderer(tmp_path).render("t", make_context())


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ user.__init__.__globals__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ user.traits.__class__ }}",
        "{{ links.__len__() }}",
    ],
)
def test_sandbox_blocks_unsafe_access(tmp_path: Path, expression: str) -> None:
    write_template(tmp_path, "evil", text=f"{expression}\n")
    with pytest.raises(TemplateError, match=r"evil/body\.txt:1"):
        Renderer(tmp_path).render("evil", make_context())


def test_sandbox_error_in_html_part_names_that_part(tmp_path: Path) -> None:
    write_template(tmp_path, "evil", html="<p>{{ ''.__class__.__mro__ }}</p>")
    with pytest.raises(TemplateError, match=r"evil/body\.html:1"):
        Renderer(tmp_path).render("evil", make_context())


@pytest.mark.parametrize("subject", ["", "   \n\t\n", "{{ '' }}", "{% if false %}x{% endif %}"])
def test_empty_subject_is_an_error(tmp_path: Path, subject: str) -> None:
    write_template(tmp_path, "t", subject=subject)
    with pytest.raises(TemplateError, match=r"t/subject\.txt"):
        Renderer(tmp_path).render("t", make_context())


def test_unknown_template_is_a_template_error(tmp_path: Path) -> None:
    write_template(tmp_path, "known")
    with pytest.raises(TemplateError, match="unknown"):
        Renderer(tmp_path).render("unknown", make_context())


def test_a_template_may_include_shared_pieces(tmp_path: Path) -> None:
    (tmp_path / "_footer.txt").write_text("Unsubscribe: {{ unsubscribe_url }}\n", encoding="utf-8")
    write_template(tmp_path, "t", text='Body\n{% include "_footer.txt" %}')
    text = Renderer(tmp_path).render("t", make_context()).text
    assert text == f"Body\nUnsubscribe: {UNSUBSCRIBE}\n"


def test_context_is_not_mutated_by_rendering(tmp_path: Path) -> None:
    write_template(tmp_path, "t", text="{% set x = 1 %}{{ x }}\n")
    context = make_context()
    before = repr(context)
    Renderer(tmp_path).render("t", context)
    assert repr(context) == before


# ---- template_names --------------------------------------------------------------------


def test_template_names_lists_only_complete_directories(tmp_path: Path) -> None:
    write_template(tmp_path, "welcome")
    write_template(tmp_path, "nudge")
    write_template(tmp_path, "_shared")
    write_template(tmp_path, ".hidden")
    incomplete = tmp_path / "incomplete"
    incomplete.mkdir()
    (incomplete / "subject.txt").write_text("S", encoding="utf-8")
    (incomplete / "body.txt").write_text("T", encoding="utf-8")
    (tmp_path / "_footer.txt").write_text("footer", encoding="utf-8")
    (tmp_path / "loose.txt").write_text("loose", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    assert template_names(tmp_path) == {"welcome", "nudge"}
    assert Renderer(tmp_path).names() == {"welcome", "nudge"}


def test_template_names_requires_parts_to_be_files(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "subject.txt").write_text("S", encoding="utf-8")
    (folder / "body.txt").write_text("T", encoding="utf-8")
    (folder / "body.html").mkdir()
    assert template_names(tmp_path) == set()


def test_template_names_of_a_missing_directory_is_empty(tmp_path: Path) -> None:
    assert template_names(tmp_path / "nope") == set()


# ---- email_context ---------------------------------------------------------------------


def test_email_context_shape() -> None:
    anchor_at = NOW - timedelta(hours=3)
    context = email_context(
        user={
            "id": "u1",
            "email": "ada@example.com",
            "persona": "data_engineer",
            "signup_source": "organic",
            "signed_up_at": NOW - timedelta(days=1),
            "timezone": "UTC",
            "account_id": "acme",
            "invited_by": "u0",
            "traits": {"name": "Ada Lovelace", "plan": "free"},
            "secret_column": "must not leak",
        },
        account={"id": "acme", "traits": {"plan": "team"}, "member_count": 4},
        inviter={"id": "u0", "email": "grace@example.com", "traits": {"name": "Grace Hopper"}},
        rule_id="r1",
        rule_description="A rule",
        anchor_name="connection_created",
        anchor_at=anchor_at,
        anchor_properties={"direction": "ingest"},
        guide_id=None,
        guide_expires_at=None,
        links={"app": "https://app.example"},
        brand={"name": "Airtouch"},
        unsubscribe_url=UNSUBSCRIBE,
    )
    assert set(context) == {
        "user",
        "account",
        "inviter",
        "rule",
        "anchor",
        "guide",
        "links",
        "brand",
        "unsubscribe_url",
    }
    assert context["user"] == {
        "id": "u1",
        "email": "ada@example.com",
        "persona": "data_engineer",
        "signup_source": "organic",
        "signed_up_at": NOW - timedelta(days=1),
        "timezone": "UTC",
        "account_id": "acme",
        "invited_by": "u0",
        "traits": {"name": "Ada Lovelace", "plan": "free"},
        "first_name": "Ada",
    }
    assert context["account"] == {"id": "acme", "traits": {"plan": "team"}, "member_count": 4}
    assert context["inviter"] == {"id": "u0", "email": "grace@example.com", "first_name": "Grace"}
    assert context["rule"] == {"id": "r1", "description": "A rule"}
    assert context["anchor"] == {
        "name": "connection_created",
        "at": anchor_at,
        "properties": {"direction": "ingest"},
    }
    assert context["guide"] is None
    assert context["links"] == {"app": "https://app.example"}
    assert context["brand"] == {"name": "Airtouch"}
    assert context["unsubscribe_url"] == UNSUBSCRIBE


def test_email_context_fills_missing_user_keys_with_none() -> None:
    context = make_context(user={"id": "u2"})
    user = context["user"]
    assert user["id"] == "u2"
    for key in (
        "email",
        "persona",
        "signup_source",
        "signed_up_at",
        "timezone",
        "account_id",
        "invited_by",
        "first_name",
    ):
        assert user[key] is None
    assert user["traits"] == {}


def test_email_context_treats_null_traits_as_empty() -> None:
    assert make_context(user={"id": "u3", "traits": None})["user"]["traits"] == {}


def test_email_context_copies_its_inputs() -> None:
    traits = {"plan": "free"}
    links = {"app": "https://app.example"}
    context = make_context(user={"id": "u1", "traits": traits}, links=links)
    context["user"]["traits"]["plan"] = "changed"
    context["links"]["app"] = "changed"
    assert traits == {"plan": "free"}
    assert links == {"app": "https://app.example"}


def test_email_context_guide_is_a_dict_when_set() -> None:
    context = make_context(guide_id="create_connection_tour")
    assert context["guide"] == {
        "id": "create_connection_tour",
        "expires_at": NOW + timedelta(days=7),
    }


def test_email_context_account_and_inviter_are_none_without_them() -> None:
    context = make_context()
    assert (context["account"], context["inviter"]) == (None, None)


def test_email_context_account_is_a_plain_copy() -> None:
    traits = {"plan": "team", "seats": 5}
    context = make_context(account={"id": "acme", "traits": traits, "member_count": 3})
    account = context["account"]
    assert account == {"id": "acme", "traits": {"plan": "team", "seats": 5}, "member_count": 3}
    assert type(account) is dict
    assert type(account["traits"]) is dict
    account["traits"]["plan"] = "changed"
    assert traits["plan"] == "team"


@pytest.mark.parametrize("traits", [{}, None])
def test_email_context_account_without_a_group_call_has_empty_traits(
    traits: dict[str, Any] | None,
) -> None:
    context = make_context(account={"id": "acme", "traits": traits, "member_count": 1})
    assert context["account"] == {"id": "acme", "traits": {}, "member_count": 1}


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        ({"first_name": "Grace", "name": "Ada Lovelace"}, "Grace"),
        ({"firstName": "Grace"}, "Grace"),
        ({"name": "Grace Brewster Hopper"}, "Grace"),
        ({}, None),
        (None, None),
    ],
)
def test_email_context_inviter_has_id_email_and_first_name(
    traits: dict[str, Any] | None, expected: str | None
) -> None:
    inviter = {"id": "u0", "email": "grace@example.com", "traits": traits}
    context = make_context(inviter=inviter)
    assert context["inviter"] == {"id": "u0", "email": "grace@example.com", "first_name": expected}
    assert type(context["inviter"]) is dict


def test_email_context_inviter_without_an_email() -> None:
    context = make_context(inviter={"id": "u0", "email": None, "traits": {"name": "Grace"}})
    assert context["inviter"] == {"id": "u0", "email": None, "first_name": "Grace"}


def test_templates_read_account_and_inviter(tmp_path: Path) -> None:
    write_template(
        tmp_path,
        "team",
        text=(
            "{% if account %}{{ account.traits.plan }}/{{ account.member_count }}{% endif %}"
            "|{% if inviter %}{{ inviter.first_name }} <{{ inviter.email }}>{% endif %}\n"
        ),
    )
    renderer = Renderer(tmp_path)
    context = make_context(
        account={"id": "acme", "traits": {"plan": "team"}, "member_count": 3},
        inviter={"id": "u0", "email": "grace@example.com", "traits": {"name": "Grace Hopper"}},
    )
    assert renderer.render("team", context).text == "team/3|Grace <grace@example.com>\n"
    assert renderer.render("team", make_context()).text == "|\n"


def test_a_missing_account_trait_is_an_error(tmp_path: Path) -> None:
    write_template(tmp_path, "t", text="{{ account.traits.plan }}\n")
    context = make_context(account={"id": "acme", "traits": {}, "member_count": 1})
    with pytest.raises(TemplateError, match="plan"):
        Renderer(tmp_path).render("t", context)


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        ({"first_name": "Ada", "firstName": "Grace", "name": "Alan Turing"}, "Ada"),
        ({"firstName": "Grace", "name": "Alan Turing"}, "Grace"),
        ({"name": "Alan Mathison Turing"}, "Alan"),
        ({"name": "  Alan  Turing "}, "Alan"),
        ({"first_name": "  Ada  "}, "Ada"),
        ({"first_name": "", "firstName": "Grace"}, "Grace"),
        ({"first_name": "   ", "name": "Alan Turing"}, "Alan"),
        ({"first_name": None, "name": "Alan"}, "Alan"),
        ({"first_name": 42, "name": "Alan"}, "Alan"),
        ({"name": ""}, None),
        ({"name": "   "}, None),
        ({"name": 7}, None),
        ({}, None),
    ],
)
def test_first_name(traits: dict[str, Any], expected: str | None) -> None:
    assert first_name(traits) == expected
    assert make_context(user={"id": "u", "traits": traits})["user"]["first_name"] == expected


# ---- the repository's templates --------------------------------------------------------


def repository_contexts(unsubscribe: str | None = None) -> list[dict[str, Any]]:
    config = load_config(ROOT / "config.yaml", environ={})
    url = unsubscribe or unsubscribe_url(config.api.public_url, config.api.secret_key, "u1")
    full_user = {
        "id": "u1",
        "email": "ada@example.com",
        "persona": "analyst",
        "signup_source": "organic",
        "signed_up_at": NOW - timedelta(days=1),
        "timezone": "UTC",
        "account_id": "acme",
        "invited_by": "u0",
        "traits": {"first_name": "Ada", "company": "Acme <Data> & Co"},
    }
    bare_user = {"id": "u1", "email": "ada@example.com", "traits": {}}
    account = {"id": "acme", "traits": {"name": "Acme <Data> & Co"}, "member_count": 2}
    inviter = {"id": "u0", "email": "grace@example.com", "traits": {"first_name": "<Grace>"}}
    contexts = []
    for user, guide_id, relations in (
        (full_user, "create_connection_tour", (account, inviter)),
        (bare_user, None, (None, None)),
    ):
        contexts.append(
            email_context(
                user=user,
                account=relations[0],
                inviter=relations[1],
                rule_id="r1",
                rule_description="A rule",
                anchor_name="signed_up",
                anchor_at=NOW - timedelta(days=1),
                anchor_properties={},
                guide_id=guide_id,
                guide_expires_at=NOW + timedelta(days=7) if guide_id else None,
                links=config.links,
                brand=config.brand.model_dump(),
                unsubscribe_url=url,
            )
        )
    return contexts


REPOSITORY_TEMPLATES = sorted(template_names(ROOT / "templates"))


def test_the_repository_has_templates() -> None:
    assert REPOSITORY_TEMPLATES


@pytest.mark.parametrize("name", REPOSITORY_TEMPLATES)
def test_repository_template_renders_with_unsubscribe_link(name: str) -> None:
    renderer = Renderer(ROOT / "templates")
    for context in repository_contexts():
        url = context["unsubscribe_url"]
        rendered = renderer.render(name, context)
        assert rendered.subject
        assert "\n" not in rendered.subject
        assert url in rendered.text
        assert f'href="{escape(url)}"' in rendered.html


@pytest.mark.parametrize("name", REPOSITORY_TEMPLATES)
def test_repository_template_escapes_the_unsubscribe_link_in_html(name: str) -> None:
    url = "https://app.example/unsubscribe/tok?a=1&b=<2>"
    renderer = Renderer(ROOT / "templates")
    for context in repository_contexts(unsubscribe=url):
        rendered = renderer.render(name, context)
        assert url in rendered.text
        assert 'href="https://app.example/unsubscribe/tok?a=1&amp;b=&lt;2&gt;"' in rendered.html
        assert url not in rendered.html


@pytest.mark.parametrize("name", REPOSITORY_TEMPLATES)
def test_repository_template_escapes_traits_in_html(name: str) -> None:
    renderer = Renderer(ROOT / "templates")
    for context in repository_contexts():
        rendered = renderer.render(name, context)
        assert "<Data>" not in rendered.html
        if "Acme <Data> & Co" in rendered.text:
            assert "Acme &lt;Data&gt; &amp; Co" in rendered.html


def test_syntax_error_is_a_template_error_with_its_line(tmp_path: Path) -> None:
    write_template(tmp_path, "bad", text="ok\nok\n{% if %}\n")
    with pytest.raises(TemplateError, match=r"bad/body\.txt:3"):
        Renderer(tmp_path).render("bad", make_context())


def test_python_error_while_rendering_is_a_template_error(tmp_path: Path) -> None:
    write_template(tmp_path, "bad", text="line\n{{ 1 // 0 }}\n")
    with pytest.raises(TemplateError, match=r"bad/body\.txt:2: ZeroDivisionError"):
        Renderer(tmp_path).render("bad", make_context())
