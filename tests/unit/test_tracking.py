"""Opens and clicks, without a server: the signed tokens, the HTML rewriting, the machine-open
heuristic, and the composer's tracked (and, by default, untracked) email."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
import yaml
from freezegun import freeze_time
from itsdangerous import URLSafeSerializer

from engine.config import Config
from engine.delivery.compose import Composer
from engine.delivery.render import Renderer
from engine.delivery.tokens import BadToken, unsubscribe_token
from engine.delivery.track_html import add_pixel, rewrite_links
from engine.delivery.tracking import (
    TRACK,
    Tracked,
    click_url,
    read_tracking_token,
    tracking_token,
)
from engine.http.tracking import is_machine_open
from engine.rules.language import Rule
from engine.store.testing import MemoryDirectory
from tests.conftest import ROOT

SECRET = "tracking-test-secret"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
OPEN = Tracked("open", "welcome", "u1", "<welcome.abc@x.io>", NOW)
CLICK = replace(OPEN, kind="click", url="https://docs.example/start?a=1&b=2")


def test_a_token_says_what_it_was_signed_with() -> None:
    assert read_tracking_token(SECRET, tracking_token(SECRET, CLICK), "click") == CLICK
    assert read_tracking_token(SECRET, tracking_token(SECRET, OPEN), "open") == OPEN


def test_a_tampered_token_or_another_secret_is_refused() -> None:
    token = tracking_token(SECRET, CLICK)
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    for bad in (flipped, token + "x", "", "not-a-token", "a" * 9000):
        with pytest.raises(BadToken):
            read_tracking_token(SECRET, bad, "click")
    with pytest.raises(BadToken):
        read_tracking_token("another-secret", token, "click")


def test_a_token_of_another_kind_or_purpose_is_refused() -> None:
    with pytest.raises(BadToken):
        read_tracking_token(SECRET, tracking_token(SECRET, OPEN), "click")
    with pytest.raises(BadToken):
        read_tracking_token(SECRET, tracking_token(SECRET, CLICK), "open")
    with pytest.raises(BadToken):  # same secret, the unsubscribe salt
        read_tracking_token(SECRET, unsubscribe_token(SECRET, "u1"), "click")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "//evil.example/", "data:text/html,x"])
def test_even_a_signed_token_never_redirects_off_http(url: str) -> None:
    signer = URLSafeSerializer(SECRET, salt=TRACK, signer_kwargs={"digest_method": hashlib.sha256})
    token = signer.dumps({"k": "click", "r": "r", "u": "u", "m": "m", "t": 0, "l": url})
    with pytest.raises(BadToken):
        read_tracking_token(SECRET, str(token), "click")


HTML = (
    '<html><body><a href="https://docs.example/start?a=1&amp;b=2">Docs</a>'
    '<a class="x" href="mailto:help@example.com">Mail</a> <a href="#top">Top</a>'
    "<a href='http://app.example/'>App</a>"
    '<a data-track="off" href="https://private.example/">Private</a>'
    '<a href="https://api.example/unsubscribe/abc">Unsubscribe</a></body></html>'
)


def test_rewrite_links_tracks_http_links_but_mail_anchors_opt_outs_and_unsubscribe() -> None:
    seen: list[str] = []

    def tracked(url: str) -> str:
        seen.append(url)
        return f"https://api.example/t/c/{len(seen)}?q=1&r=2"

    out = rewrite_links(HTML, tracked, keep="https://api.example/unsubscribe/")
    assert seen == ["https://docs.example/start?a=1&b=2", "http://app.example/"]  # unescaped
    assert '<a href="https://api.example/t/c/1?q=1&amp;r=2">Docs</a>' in out  # escaped back
    assert "<a href='https://api.example/t/c/2?q=1&amp;r=2'>App</a>" in out
    for kept in ("mailto:help@example.com", "#top", "https://private.example/", "/unsubscribe/"):
        assert kept in out


def test_the_pixel_goes_before_the_end_of_the_body() -> None:
    out = add_pixel("<html><body><p>Hi</p></body></html>", "https://api.example/t/o/x.gif")
    assert out.endswith(
        'width="1" height="1" alt="" style="display:block;width:1px;'
        'height:1px;border:0"></body></html>'
    )
    assert out.startswith('<html><body><p>Hi</p><img src="https://api.example/t/o/x.gif"')
    assert add_pixel("<p>no body</p>", "u").startswith("<p>no body</p><img")


SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15"
)
MPP = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


@pytest.mark.parametrize(
    ("agent", "after", "machine"),
    [
        (SAFARI, timedelta(minutes=10), False),
        (None, timedelta(minutes=10), False),
        (SAFARI, timedelta(seconds=2), True),  # too soon after the hand-over for a person
        (MPP, timedelta(hours=3), True),
        (GMAIL, timedelta(hours=3), True),
    ],
)
def test_machine_opens(agent: str | None, after: timedelta, machine: bool) -> None:
    assert is_machine_open(agent, NOW, NOW + after, 5.0) is machine


RULE = Rule.model_validate({"id": "welcome", "send": {"email": "community_invite"}})


def compose(**tracking: Any) -> EmailMessage:
    config = Config.model_validate(
        {
            "api": {"public_url": "https://api.example", "secret_key": SECRET},
            "mail": {"from": "T <t@x.io>", "tracking": tracking},
            # The shipped links: the shipped templates link to them.
            "links": yaml.safe_load((ROOT / "config.yaml").read_text())["links"],
        }
    )
    composer = Composer(Renderer(ROOT / "templates"), config, MemoryDirectory())
    user = {"id": "u1", "email": "u1@example.com", "traits": {"first_name": "Ada"}}
    return composer.message(
        RULE,
        "community_invite",
        user,
        (NOW, {}),
        (None, None),
        to="u1@example.com",
        message_id="<m1@x.io>",
        now=NOW,
    )


def parts(message: EmailMessage) -> tuple[str, str]:
    text, html = (message.get_body(("plain",)), message.get_body(("html",)))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


def test_tracking_is_off_by_default() -> None:
    _, html = parts(compose())
    assert "/t/c/" not in html
    assert "/t/o/" not in html


def test_a_tracked_email_has_signed_links_and_a_pixel_and_an_untouched_text_part() -> None:
    # One frozen second for both: the unsubscribe link's signature carries the time it was
    # made, and two composes a second apart differed there (seen once in CI).
    with freeze_time("2026-03-10 12:00:00"):
        plain_text, plain_html = parts(compose())
        text, html = parts(compose(opens=True, clicks=True))
    assert text == plain_text
    assert "/t/o/" in html
    assert "/t/c/" in html
    assert "https://api.example/unsubscribe/" in html  # never tracked
    token = html.split("https://api.example/t/c/", 1)[1].split('"', 1)[0]
    tracked = read_tracking_token(SECRET, token, "click")
    assert (tracked.rule_id, tracked.user_id, tracked.message_id) == ("welcome", "u1", "<m1@x.io>")
    assert tracked.url is not None
    assert tracked.url in plain_html.replace("&amp;", "&")
    assert click_url("https://api.example", SECRET, tracked).endswith(token)


def test_opens_alone_leave_the_links_alone() -> None:
    _, html = parts(compose(opens=True))
    assert "/t/o/" in html
    assert "/t/c/" not in html
