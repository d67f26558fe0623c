"""The web console over HTTP (uvicorn on loopback, httpx), on demo-like data, on SQLite and
PostgreSQL: access (login, sessions, CSRF, roles, audit) and every page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import create_engine

from engine.clock import FixedClock
from engine.config import Config
from engine.http.app import create_app
from engine.http.server import running_server
from engine.sql.schema import audit, deliveries
from engine.store import EventRecord, Store, UserUpsert
from engine.whatif.replay import OUTCOMES, Period, by_rule, replay, summarize
from tests.conftest import _truncate
from tests.integration.console_kit import (
    OPERATOR,
    OPERATOR_PASSWORD,
    VIEWER,
    VIEWER_PASSWORD,
    Console,
    csrf_of,
    demo_console,
    log_in,
)
from tests.smtp_server import SmtpServer

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)


DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lifecycle.db'}"
    url = str(request.getfixturevalue("pg_database"))
    engine = create_engine(url)
    _truncate(engine)
    engine.dispose()
    return url


@pytest.fixture(params=DATABASES)
def console(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Console]:
    with demo_console(tmp_path, _database_url(request, tmp_path), NOW) as console:
        yield console


@pytest.fixture(params=DATABASES)
def smtp_console(
    request: pytest.FixtureRequest, tmp_path: Path, smtp_server: SmtpServer
) -> Iterator[Console]:
    """The console of a daemon whose transport is the test SMTP server."""
    smtp = {"host": smtp_server.host, "port": smtp_server.port, "security": "none"}
    mail = {"transport": "smtp", "smtp": {**smtp, "timeout": "5s"}}
    with demo_console(tmp_path, _database_url(request, tmp_path), NOW, mail) as console:
        yield console


@pytest.fixture
def client(console: Console) -> Iterator[httpx.Client]:
    with console.client() as client:
        yield client


def _audit_rows(console: Console) -> list[dict[str, object]]:
    return console.app.store.reads.dump()[audit.name]


# ---- access ------------------------------------------------------------------------------


def test_every_page_needs_a_login(client: httpx.Client, console: Console) -> None:
    for path in (
        "/console/rules",
        f"/console/rules/{console.rule_id}",
        "/console/users",
        "/console/deliveries?status=failed",
        "/console/reports",
        "/console/whatif",
        "/console/audit",
    ):
        response = client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/console/login?next={quote(path, safe='')}"


def test_a_login_opens_the_page_asked_for(client: httpx.Client) -> None:
    form = client.get("/console/login?next=/console/deliveries")
    assert 'name="next" value="/console/deliveries"' in form.text
    response = client.post(
        "/console/login",
        data={
            "username": VIEWER,
            "password": VIEWER_PASSWORD,
            "csrf": csrf_of(form.text),
            "next": "/console/deliveries",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/deliveries"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert client.get("/console/deliveries").status_code == 200


@pytest.mark.parametrize(
    ("username", "password"), [(OPERATOR, "wrong-password-123"), ("nobody", OPERATOR_PASSWORD)]
)
def test_a_bad_password_or_user_is_refused(
    client: httpx.Client, username: str, password: str
) -> None:
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf": csrf_of(form.text)},
    )
    assert response.status_code == 401
    assert "Wrong username or password." in response.text
    assert "lifecycle_console=" not in response.headers.get("set-cookie", "")
    assert client.get("/console/rules").status_code == 303


def test_a_login_without_its_csrf_token_is_refused(client: httpx.Client) -> None:
    client.get("/console/login")
    response = client.post(
        "/console/login", data={"username": OPERATOR, "password": OPERATOR_PASSWORD}
    )
    assert response.status_code == 403
    assert client.get("/console/rules").status_code == 303


def test_a_login_never_sends_the_browser_elsewhere(client: httpx.Client) -> None:
    for target in ("https://evil.example/", "//evil.example/console/", "/console//evil.example"):
        form = client.get("/console/login")
        response = client.post(
            "/console/login",
            data={
                "username": VIEWER,
                "password": VIEWER_PASSWORD,
                "csrf": csrf_of(form.text),
                "next": target,
            },
        )
        assert response.headers["location"] == "/console/rules", target
        client.cookies.clear()


def test_a_session_expires(client: httpx.Client, console: Console) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    console.clock.at = NOW + timedelta(hours=8) - timedelta(seconds=1)
    assert client.get("/console/rules").status_code == 200
    console.clock.at = NOW + timedelta(hours=8)  # console.session_ttl, the default
    assert client.get("/console/rules").status_code == 303


def test_logging_out_ends_the_session(client: httpx.Client) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    page = client.get("/console/rules")
    assert client.post("/console/logout", data={}).status_code == 403  # CSRF, even here
    response = client.post("/console/logout", data={"csrf": csrf_of(page.text)})
    assert response.status_code == 303
    assert client.get("/console/rules").status_code == 303


def _lift_path(console: Console, client: httpx.Client) -> tuple[str, str]:
    page = client.get(f"/console/users/{quote(console.suppressed_user)}")
    assert page.status_code == 200
    [suppression] = console.app.store.console.suppressions(console.suppressed_user, None)
    path = f"/console/users/{quote(console.suppressed_user)}/suppressions/{suppression['id']}/lift"
    return path, csrf_of(page.text)


def test_a_post_without_the_csrf_token_is_refused(client: httpx.Client, console: Console) -> None:
    log_in(client, OPERATOR, OPERATOR_PASSWORD)
    path, token = _lift_path(console, client)
    for data in ({}, {"csrf": token[:-1] + "x"}):
        response = client.post(path, data=data)
        assert response.status_code == 403
        assert "CSRF token" in response.text
    assert console.app.store.console.suppressions(console.suppressed_user, None)


def test_a_read_only_user_cannot_lift_a_suppression(client: httpx.Client, console: Console) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    path, token = _lift_path(console, client)
    assert (
        "operators can lift" in client.get(f"/console/users/{quote(console.suppressed_user)}").text
    )
    response = client.post(path, data={"csrf": token})
    assert response.status_code == 403
    assert f"{VIEWER} is read-only" in response.text
    assert console.app.store.console.suppressions(console.suppressed_user, None)
    assert [row["action"] for row in _audit_rows(console)] == ["login"]


def test_an_operator_lifts_a_suppression_and_the_audit_says_who_and_when(
    client: httpx.Client, console: Console
) -> None:
    log_in(client, OPERATOR, OPERATOR_PASSWORD)
    path, token = _lift_path(console, client)
    console.clock.at = NOW + timedelta(minutes=5)
    response = client.post(path, data={"csrf": token})
    assert response.status_code == 303
    assert console.app.store.console.suppressions(console.suppressed_user, None) == []
    login, lift = _audit_rows(console)
    assert (login["actor"], login["action"], login["at"]) == (OPERATOR, "login", NOW)
    assert lift["actor"] == OPERATOR
    assert lift["role"] == "operator"
    assert lift["action"] == "lift_suppression"
    assert lift["target"] == f"user:{console.suppressed_user}"
    assert lift["at"] == NOW + timedelta(minutes=5)
    assert "reason=bounced" in str(lift["detail"])
    assert client.post(path, data={"csrf": token}).status_code == 404  # already lifted
    audit_page = client.get("/console/audit").text
    assert "lift_suppression" in audit_page
    assert f"user:{console.suppressed_user}" in audit_page


def test_a_trusted_proxy_header_logs_people_in(tmp_path: Path) -> None:
    with (
        demo_console(
            tmp_path, f"sqlite:///{tmp_path / 'p.db'}", NOW, upstream_header="X-Forwarded-User"
        ) as console,
        console.client() as client,
    ):
        response = client.get("/console/rules", headers={"X-Forwarded-User": OPERATOR})
        assert response.status_code == 200
        assert f"{OPERATOR} (operator)" in response.text
        assert "Log out" not in response.text  # the proxy owns the login
        stranger = client.get("/console/rules", headers={"X-Forwarded-User": "kim"})
        assert "kim (read-only)" in stranger.text  # console.upstream_role
        assert client.get("/console/rules", headers={"X-Forwarded-User": "<b>"}).status_code == 303


def test_a_proxy_header_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    with (
        demo_console(
            tmp_path,
            f"sqlite:///{tmp_path / 'p.db'}",
            NOW,
            upstream_header="X-Forwarded-User",
            upstream_trusted=["10.9.9.9"],
        ) as console,
        console.client() as client,
    ):
        response = client.get("/console/rules", headers={"X-Forwarded-User": OPERATOR})
        assert response.status_code == 303


# ---- pages -------------------------------------------------------------------------------


def _assert_strict(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "script-src 'none'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "<script" not in response.text.lower()
    assert response.headers["cache-control"] == "no-store"


def test_the_rules_page_lists_every_rule_with_its_counts(
    client: httpx.Client, console: Console
) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    response = client.get("/console/rules")
    assert response.status_code == 200
    _assert_strict(response)
    rules = console.app.runner.rules
    for rule in rules.rules:
        assert f'href="/console/rules/{rule.id}"' in response.text
        assert rules.where(rule.id) in response.text
    counts = console.app.store.console.rule_counts(NOW)
    _rule_id, per_status = next(iter(counts.items()))
    _status, (day, week, ever) = next(iter(per_status.items()))
    assert ever >= 1
    assert f"{day} / {week} / {ever}" in response.text
    assert ">failed<" in response.text
    assert ">unknown<" in response.text


PLANTED_RULE = "welcome-invited-data-engineer"  # goal: workflow_saved within 7d


def _plant_impact(store: Store) -> None:
    """40 treated users of whom 20 reach the goal, 40 held out of whom 8 do, fired two days
    ago: enough units and conversions for the report to give an interval."""
    fired = NOW - timedelta(days=2)
    arms = [("sent", False, index < 20) for index in range(40)]
    arms += [("held_out", True, index < 8) for index in range(40)]
    ids = [f"planted-{index}" for index in range(len(arms))]
    store.people.upsert_users([UserUpsert(i, {}, signed_up_at=fired) for i in ids], NOW)
    goals = [
        EventRecord(i, "workflow_saved", fired + timedelta(hours=1), {}, None)
        for i, (_status, _held, converts) in zip(ids, arms, strict=True)
        if converts
    ]
    store.people.insert_events(goals, NOW)
    with store.engine.begin() as connection:
        connection.execute(
            deliveries.insert(),
            [
                {
                    "rule_id": PLANTED_RULE,
                    "user_id": i,
                    "subject": i,
                    "status": status,
                    "holdout": held,
                    "anchor_at": fired,
                    "fire_at": fired,
                    "created_at": fired,
                    "updated_at": fired,
                }
                for i, (status, held, _converts) in zip(ids, arms, strict=True)
            ],
        )


def _cells(html: str, rule_id: str) -> list[str]:
    """The cells (as HTML) of the row a table starts with `rule_id` (a link or plain text)."""
    row = re.search(rf"<tr[^>]*>\s*<td>(?:<a [^>]*>)?{re.escape(rule_id)}<.*?</tr>", html, re.S)
    assert row is not None, rule_id
    return re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def _impact(html: str, rule_id: str) -> str:
    """The rules page's impact lines for `rule_id`, under its goal."""
    [goal] = [c for c in _cells(html, rule_id) if 'class="impact"' in c]
    found = re.search(r'<div class="impact">(.*?)</div>', goal, re.S)
    assert found is not None
    return _text(found.group(1))


def test_the_rules_page_shows_each_rules_impact_as_the_reports_page_does(
    client: httpx.Client, console: Console
) -> None:
    _plant_impact(console.app.store)
    log_in(client, VIEWER, VIEWER_PASSWORD)
    reports = client.get("/console/reports")  # its default period: the last 30 days
    _rule, treated, held, lift, ci, *_ = map(_text, _cells(reports.text, PLANTED_RULE))
    rules = client.get("/console/rules")
    assert rules.status_code == 200
    assert "<th>Goal, impact</th>" in rules.text
    impact = _impact(rules.text, PLANTED_RULE)
    treated_rate = re.search(r"\((.+)\)$", treated)
    held_rate = re.search(r"\((.+)\)$", held)
    assert treated_rate is not None
    assert held_rate is not None
    assert ci.startswith("[")  # planted to be large enough for an interval
    expected_lift = lift.split(" (")[0]  # the reports page adds the relative lift
    assert impact == f"{treated_rate[1]} vs {held_rate[1]} {expected_lift} {ci}"
    # Rules without a goal say so; none of the repository's goal rules is left blank.
    for rule in console.app.runner.rules.rules:
        cell = _impact(rules.text, rule.id)
        assert cell, rule.id
        assert (cell == "no goal") == (rule.goal is None), rule.id


def test_a_rule_page_previews_the_email_as_sent(client: httpx.Client, console: Console) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    rule_id, user_id = console.rule_id, console.firing_user
    response = client.get(f"/console/rules/{rule_id}")
    assert response.status_code == 200
    _assert_strict(response)
    [planned] = list(console.app.runner.dry_run(NOW, rule_ids=[rule_id], user_ids=[user_id]))
    assert planned.rendered is not None
    html = response.text
    assert f'Preview for <a href="/console/users/{quote(user_id, safe="")}">' in html
    assert f'<p class="subject" id="subject">{_escaped(planned.rendered.subject)}</p>' in html
    frame = re.search(r'<iframe class="email" sandbox="" [^>]*src="([^"]+)"', html)
    assert frame is not None
    document = client.get(frame.group(1).replace("&amp;", "&"))
    assert document.status_code == 200
    assert document.text == planned.rendered.html  # byte for byte what the dispatcher sends
    csp = document.headers["content-security-policy"]
    assert "sandbox" in csp
    assert "default-src 'none'" in csp
    assert "frame-ancestors 'self'" in csp
    assert _escaped(planned.rendered.text.splitlines()[0]) in html
    assert f'href="/console/rules/{rule_id}?user={quote(user_id, safe="")}"' in html  # dry run


def test_a_rule_page_says_why_a_user_does_not_match(client: httpx.Client, console: Console) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    response = client.get(
        f"/console/rules/{console.rule_id}?user={quote(console.suppressed_user)}"
        "&at=2020-01-01T00:00:00Z"
    )
    assert response.status_code == 200
    assert "The rule does not fire for this user now" in response.text
    assert 'class="fail"' in response.text
    missing = client.get(f"/console/rules/{console.rule_id}?user=nobody-at-all")
    assert "unknown user &#39;nobody-at-all&#39;" in missing.text
    assert client.get("/console/rules/no-such-rule").status_code == 404
    assert client.get(f"/console/rules/{console.rule_id}?at=yesterday").status_code == 400


def test_a_user_is_found_by_id_or_email_and_shows_a_timeline(
    client: httpx.Client, console: Console
) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    user = console.app.store.console.user(console.firing_user)
    assert user is not None
    assert user["email"]
    for query in (user["id"], user["email"], user["email"].upper()):
        found = client.get("/console/users", params={"q": query})
        assert found.status_code == 303, query
        assert found.headers["location"] == f"/console/users/{quote(user['id'], safe='')}"
    none = client.get("/console/users", params={"q": "nobody@example.com"})
    assert "no user has this id or email" in none.text
    assert client.get("/console/users", params={"q": "x" * 321}).status_code == 422
    active = console.app.store.reads.dump()["events"][0]
    page = client.get(f"/console/users/{quote(active['user_id'])}")
    assert page.status_code == 200
    _assert_strict(page)
    assert f"event <code>{active['name']}</code>" in page.text  # events on the axis
    assert 'id="explain"' in page.text
    assert "does not fire at" in page.text
    assert client.get("/console/users/nobody-at-all").status_code == 404


def test_a_users_timeline_holds_ledger_rows_with_reply(
    client: httpx.Client, console: Console
) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    [failed] = console.app.store.reads.deliveries(status="failed")
    page = client.get(f"/console/users/{quote(failed['user_id'])}")
    assert f'ledger <a href="/console/rules/{failed["rule_id"]}' in page.text
    assert "550 5.1.1 &lt;x@example.com&gt;: no such user" in page.text  # escaped


def test_deliveries_put_what_needs_attention_first(client: httpx.Client, console: Console) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    response = client.get("/console/deliveries")
    assert response.status_code == 200
    _assert_strict(response)
    statuses = re.findall(r'<span class="status (\w+)">', response.text)
    assert statuses[:2] == ["unknown", "failed"] or statuses[:2] == ["failed", "unknown"]
    assert "failed" not in statuses[2:]
    assert "unknown" not in statuses[2:]
    only = client.get("/console/deliveries", params={"status": "failed"})
    assert re.findall(r'<span class="status (\w+)">', only.text) == ["failed"]
    later = client.get("/console/deliveries", params={"since": "2030-01-01T00:00:00Z"})
    assert "no ledger rows match" in later.text
    assert client.get("/console/deliveries", params={"status": "nope"}).status_code == 400
    assert client.get("/console/deliveries", params={"page": 0}).status_code == 422


def test_the_reports_page_shows_the_impact_table(client: httpx.Client, console: Console) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    response = client.get("/console/reports", params={"from": "2026-03-01T00:00:00Z"})
    assert response.status_code == 200
    _assert_strict(response)
    assert "Impact per rule: goal conversion, treated vs held out" in response.text
    assert "95% CI" in response.text
    assert "Held out: conv." in response.text
    assert "2026-03-01T00:00:00Z to 2026-03-10T12:00:00Z" in response.text
    wrong = client.get("/console/reports", params={"from": "2026-04-01T00:00:00Z"})
    assert wrong.status_code == 400


def test_the_whatif_page_replays_the_rules_and_writes_nothing(
    client: httpx.Client, console: Console
) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    form = client.get("/console/whatif")
    assert form.status_code == 200
    _assert_strict(form)
    assert 'id="whatif"' not in form.text  # no replay until one is asked for
    before = console.app.store.reads.dump()
    start, end = NOW - timedelta(days=2), NOW
    response = client.get(
        "/console/whatif",
        params={"from": "2026-03-08T12:00:00Z", "to": "2026-03-10T12:00:00Z", "step": "1h"},
    )
    assert response.status_code == 200
    expected = summarize(
        replay(console.app.runner, Period(start, end, timedelta(hours=1))).entries, by_rule
    )
    assert expected, "the demo population must fire some rules over two days"
    for rule_id, per_outcome in expected.items():
        cells = [_text(c) for c in _cells(response.text, rule_id)]
        assert cells == [
            rule_id,
            *(str(per_outcome[o]) for o in OUTCOMES),
            str(sum(per_outcome.values())),
        ]
    assert len(re.findall(r"<tr><td><a ", response.text)) == len(expected)
    assert console.app.store.reads.dump() == before  # the replay was rolled back
    assert 'href="/console/whatif"' in response.text  # in the nav


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"from": "2026-03-01T00:00:00Z", "to": "2026-03-08T00:00:01Z"}, "at most 7d"),
        (
            {"from": "2026-03-09T00:00:00Z", "to": "2026-03-10T00:00:00Z", "step": "14m"},
            "at least 15m",
        ),
        ({"from": "2026-03-09T00:00:00Z", "to": "2026-03-10T00:00:00Z", "step": "soon"}, "step:"),
        ({"from": "2026-03-10T00:00:00Z", "to": "2026-03-09T00:00:00Z"}, "is before"),
        ({"from": "2026-03-09T00:00:00Z"}, "both are needed"),
    ],
)
def test_the_whatif_page_refuses_an_unbounded_replay(
    client: httpx.Client, params: dict[str, str], message: str
) -> None:
    log_in(client, VIEWER, VIEWER_PASSWORD)
    response = client.get("/console/whatif", params=params)
    assert response.status_code == 400
    assert message in response.text


def _escaped(text: str) -> str:
    from markupsafe import escape

    return str(escape(text))


def test_what_users_wrote_is_shown_escaped(client: httpx.Client, console: Console) -> None:
    hostile = "<script>alert(1)</script>"
    console.app.store.people.upsert_users(
        [UserUpsert("x<y", {"company": hostile}, email="x@example.com", signed_up_at=NOW)], NOW
    )
    console.app.store.people.insert_events(
        [EventRecord("x<y", "login", NOW, {"note": hostile}, None)], NOW
    )
    log_in(client, VIEWER, VIEWER_PASSWORD)
    page = client.get("/console/users/" + quote("x<y", safe=""))
    assert page.status_code == 200
    _assert_strict(page)  # no <script anywhere
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<h1>User x&lt;y</h1>" in page.text
    assert 'action="/console/users/x%3Cy"' in page.text  # quoted in the path


def test_without_a_login_configured_the_console_says_how_to_turn_it_on(
    store: Store, now: datetime
) -> None:
    http = create_app(store=store, config=Config(), clock=FixedClock(now))
    with running_server(http) as base:
        answer = httpx.get(f"{base}/console/rules", timeout=10)
    assert answer.status_code == 503
    assert "console.users (lifecycle hash-password)" in answer.text


# ---- test sends --------------------------------------------------------------------------


def _send_form(client: httpx.Client, console: Console) -> tuple[str, str]:
    page = client.get(f"/console/rules/{console.rule_id}?user={quote(console.firing_user)}")
    assert page.status_code == 200
    return page.text, csrf_of(page.text)


def _without_audit(console: Console) -> dict[str, list[dict[str, Any]]]:
    tables = dict(console.app.store.reads.dump())
    del tables[audit.name]  # the login and the send are recorded there, and nowhere else
    return tables


def test_an_operator_sends_a_test_and_the_audit_says_who_where_and_when(
    smtp_console: Console, smtp_server: SmtpServer
) -> None:
    console = smtp_console
    with console.client() as client:
        log_in(client, OPERATOR, OPERATOR_PASSWORD)
        html, token = _send_form(client, console)
        assert 'id="send-test"' in html
        before = _without_audit(console)
        console.clock.at = NOW + timedelta(minutes=5)
        response = client.post(
            f"/console/rules/{console.rule_id}/send-test",
            data={"csrf": token, "user": console.firing_user, "at": "", "to": "qa@example.org"},
        )
    assert response.status_code == 200, response.text
    _assert_strict(response)
    assert "Test sent to qa@example.org" in response.text
    [planned] = console.app.runner.dry_run(
        NOW + timedelta(minutes=5), rule_ids=[console.rule_id], user_ids=[console.firing_user]
    )
    assert planned.rendered is not None
    [message] = smtp_server.messages
    assert message.rcpt_tos == ("qa@example.org",)
    assert message.message["To"] == "qa@example.org"
    assert message.message["Subject"] == "[test] " + planned.rendered.subject
    assert str(message.message["Message-ID"]).startswith("<test.")
    assert _without_audit(console) == before  # no ledger row, flag or suppression
    login, sent = _audit_rows(console)
    assert login["action"] == "login"
    assert (sent["actor"], sent["role"], sent["action"]) == (OPERATOR, "operator", "send_test")
    assert sent["at"] == NOW + timedelta(minutes=5)
    assert sent["target"] == f"user:{console.firing_user}"
    assert f"rule={console.rule_id} to=qa@example.org" in str(sent["detail"])


def test_a_refused_test_send_shows_the_transports_reply(
    smtp_console: Console, smtp_server: SmtpServer
) -> None:
    console = smtp_console
    smtp_server.reply_next_rcpt("550 5.1.1 <qa@example.org>: no such user")
    with console.client() as client:
        log_in(client, OPERATOR, OPERATOR_PASSWORD)
        _html, token = _send_form(client, console)
        response = client.post(
            f"/console/rules/{console.rule_id}/send-test",
            data={"csrf": token, "user": console.firing_user, "to": "qa@example.org"},
        )
    assert response.status_code == 200
    assert "Test not sent to qa@example.org" in response.text
    assert "550 5.1.1 &lt;qa@example.org&gt;: no such user" in response.text
    assert "Traceback" not in response.text
    assert smtp_server.messages == []
    assert "not sent: " in str(_audit_rows(console)[-1]["detail"])


def test_a_test_send_needs_an_operator_a_csrf_token_and_one_address(
    smtp_console: Console, smtp_server: SmtpServer
) -> None:
    console = smtp_console
    path = f"/console/rules/{console.rule_id}/send-test"
    fields = {"user": console.firing_user, "to": "qa@example.org"}
    with console.client() as client:
        log_in(client, VIEWER, VIEWER_PASSWORD)
        html, token = _send_form(client, console)
        assert 'id="send-test"' not in html  # no form for the read-only
        refused = client.post(path, data={**fields, "csrf": token})
        assert refused.status_code == 403
        assert f"{VIEWER} is read-only" in refused.text
        client.cookies.clear()
        log_in(client, OPERATOR, OPERATOR_PASSWORD)
        _html, token = _send_form(client, console)
        assert client.post(path, data=fields).status_code == 403  # no CSRF token
        for to in (
            "qa@example.org, x@example.org",
            "qa@example.org\r\nBcc: x@example.org",
            "not-an-address",
            "q" * 250 + "@example.org",
            "",
        ):
            answer = client.post(path, data={**fields, "csrf": token, "to": to})
            assert answer.status_code == 400, to
    assert smtp_server.messages == []
    assert [row["action"] for row in _audit_rows(console)] == ["login", "login"]
