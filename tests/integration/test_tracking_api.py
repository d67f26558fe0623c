"""The tracking routes over real sockets (uvicorn on 127.0.0.1, httpx), the store on SQLite and
PostgreSQL: a click is recorded and redirected, an open answers a GIF and is recorded (machine
or not), a bad or tampered token is a 400 that redirects nowhere; and the recorded events are
ordinary events, which a goal can count."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from engine.config import Config, ReportsConfig
from engine.delivery.tracking import Tracked, tracking_token
from engine.http.tracking import PIXEL
from engine.model import Event
from engine.reports import catalog
from engine.reports.context import ReportContext
from engine.reports.output import rich_report
from engine.reports.periods import Period
from engine.rules.language import Rule
from engine.sql.schema import deliveries
from engine.store import Store, UserUpsert
from tests.integration.test_api import events, serving

SECRET = "tracking-api-secret"
URL = "https://docs.example/start?a=1&b=2"
MPP = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
SAFARI = f"{MPP} Version/17.0 Safari/605.1.15"


def config() -> Config:
    return Config.model_validate(
        {"api": {"secret_key": SECRET}, "mail": {"tracking": {"opens": True, "clicks": True}}}
    )


def sent(now: datetime, ago: timedelta = timedelta(hours=1)) -> Tracked:
    return Tracked("open", "welcome", "u1", "<welcome.u1@x.io>", now - ago)


def tracked_events(store: Store) -> list[Event]:
    return [e for e in events(store, "u1") if e.name.startswith("email_")]


@pytest.fixture
def user(store: Store, now: datetime) -> None:
    store.people.upsert_users([UserUpsert("u1", {}, email="u1@x.io", signed_up_at=now)], now)


@pytest.mark.usefixtures("user")
def test_a_click_is_recorded_and_redirected(store: Store, now: datetime) -> None:
    token = tracking_token(SECRET, replace(sent(now), kind="click", url=URL))
    with serving(store, now, config()) as client:
        response = client.get(f"/t/c/{token}")
    assert response.status_code == 302
    assert response.headers["location"] == URL
    assert "no-store" in response.headers["cache-control"]
    (event,) = tracked_events(store)
    assert event.name == "email_clicked"
    assert event.occurred_at == now
    assert event.properties == {
        "rule_id": "welcome",
        "message_id": "<welcome.u1@x.io>",
        "url": URL,
    }


@pytest.mark.usefixtures("user")
@pytest.mark.parametrize(
    ("agent", "ago", "machine"),
    [
        (SAFARI, timedelta(hours=1), False),
        (SAFARI, timedelta(seconds=1), True),  # within machine_open_seconds of the hand-over
        (MPP, timedelta(hours=1), True),  # Apple Mail Privacy Protection's prefetch
    ],
)
def test_an_open_answers_a_gif_and_is_recorded(
    store: Store, now: datetime, agent: str, ago: timedelta, machine: bool
) -> None:
    token = tracking_token(SECRET, sent(now, ago))
    with serving(store, now, config()) as client:
        response = client.get(f"/t/o/{token}.gif", headers={"User-Agent": agent})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content == PIXEL
    (event,) = tracked_events(store)
    assert event.name == "email_opened"
    assert event.properties == {
        "rule_id": "welcome",
        "message_id": "<welcome.u1@x.io>",
        "machine": machine,
    }


def _tampered(token: str) -> str:
    middle = len(token) // 2
    return token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1 :]


@pytest.mark.usefixtures("user")
def test_a_bad_or_tampered_token_is_a_400_that_redirects_nowhere(
    store: Store, now: datetime
) -> None:
    click = tracking_token(SECRET, replace(sent(now), kind="click", url=URL))
    opened = tracking_token(SECRET, sent(now))
    foreign = tracking_token("another-secret", replace(sent(now), kind="click", url=URL))
    paths = [
        f"/t/c/{_tampered(click)}",
        f"/t/c/{foreign}",
        f"/t/c/{opened}",  # an open's token is not a link
        "/t/c/https:evil.example",  # a URL in place of a token
        f"/t/o/{_tampered(opened)}.gif",
        f"/t/o/{opened}",  # not the pixel's name
        f"/t/o/{click}.gif",
    ]
    with serving(store, now, config()) as client:
        responses = [client.get(path) for path in paths]
    assert [r.status_code for r in responses] == [400] * len(paths)
    assert all("location" not in r.headers for r in responses)
    assert tracked_events(store) == []


@pytest.mark.usefixtures("user")
def test_the_links_keep_working_with_tracking_turned_off(store: Store, now: datetime) -> None:
    """An email sent while tracking was on still takes its reader where it said."""
    token = tracking_token(SECRET, replace(sent(now), kind="click", url=URL))
    off = Config.model_validate({"api": {"secret_key": SECRET}})
    with serving(store, now, off) as client:
        assert client.get(f"/t/c/{token}").headers["location"] == URL


RULE = Rule.model_validate(
    {
        "id": "welcome",
        "send": {"email": "welcome_tpl"},
        "goal": {"event": "email_clicked", "within": "7d", "where": {"rule_id": "welcome"}},
    }
)


def _sent_row(user_id: str, at: datetime) -> dict[str, Any]:
    return {
        "rule_id": "welcome",
        "user_id": user_id,
        "subject": user_id,
        "status": "sent",
        "email_template": "welcome_tpl",
        "message_id": f"<welcome.{user_id}@x.io>",
        "anchor_at": at,
        "fire_at": at,
        "send_at": at,
        "sent_at": at,
        "holdout": False,
        "attempts": 1,
        "created_at": at,
        "updated_at": at,
    }


def test_goals_and_the_report_count_the_recorded_opens_and_clicks(
    store: Store, now: datetime
) -> None:
    fired = now - timedelta(hours=1)
    users = ("u1", "u2", "u3")
    store.people.upsert_users([UserUpsert(u, {}, signed_up_at=fired) for u in users], fired)
    with store.engine.begin() as connection:
        connection.execute(deliveries.insert(), [_sent_row(u, fired) for u in users])
    u1 = Tracked("open", "welcome", "u1", "<welcome.u1@x.io>", fired)
    u2 = replace(u1, user_id="u2", message_id="<welcome.u2@x.io>")
    with serving(store, now, config()) as client:
        # u1 reads it and clicks; u2's only open is Apple's prefetch; u3 does nothing.
        client.get(f"/t/o/{tracking_token(SECRET, u1)}.gif", headers={"User-Agent": SAFARI})
        client.get(f"/t/c/{tracking_token(SECRET, replace(u1, kind='click', url=URL))}")
        client.get(f"/t/o/{tracking_token(SECRET, u2)}.gif", headers={"User-Agent": MPP})
    period = Period(now - timedelta(days=1), now + timedelta(days=1), now + timedelta(hours=1))
    report = catalog.build("impact", ReportContext(store, ReportsConfig(), period, rules=(RULE,)))
    (impact,) = report.table("impact").rows
    assert (impact["treated"], impact["treated_converted"]) == (3, 1)  # the click is u1's goal
    (engagement,) = report.table("engagement").rows
    assert dict(engagement) == {
        "rule": "welcome",
        "sent": 3,
        "opened": 1,  # u1; u2's open was a machine's
        "open_rate": pytest.approx(1 / 3),
        "opened_any": 2,
        "any_open_rate": pytest.approx(2 / 3),
        "clicked": 1,
        "click_rate": pytest.approx(1 / 3),
    }
    assert any("not the goal" in note for note in report.notes)
    console = Console(width=160, record=True)
    console.print(rich_report(report, width=160))
    text = console.export_text()
    assert "Opens and clicks per rule (not the goal)" in text
    assert "1 / 3 (33.3%)" in text
    assert "2 / 3 (66.7%)" in text


def test_without_tracked_events_there_is_no_engagement_table(store: Store, now: datetime) -> None:
    period = Period(now - timedelta(days=1), now + timedelta(days=1), now)
    report = catalog.build("impact", ReportContext(store, ReportsConfig(), period, rules=(RULE,)))
    assert [table.id for table in report.tables] == ["impact"]
