"""`lifecycle send-test` against a real SMTP server (aiosmtpd on loopback): the very email a
tick sends, to another address, "[test]"-prefixed, and not a row of the ledger changed."""

from __future__ import annotations

import re
from pathlib import Path

from tests.acceptance.conftest import Project
from tests.acceptance.test_smtp_delivery import smtp_project
from tests.smtp_server import SmtpServer

AT = "2026-03-02T09:05:00Z"  # five minutes after sam's signup: the welcome is due
RULE = "welcome-sales-marketing"
UNSUBSCRIBE = re.compile(r"/unsubscribe/[^\s\"<>]+")  # its token is stamped with the time


def send(project: Project, *extra: str, ok: bool = True) -> str:
    result = project.run(
        "send-test", "--rule", RULE, "--user", "sam", "--to", "qa@example.org", *extra, ok=ok
    )
    return result.output


def test_the_test_email_is_the_dispatched_one_prefixed_and_sent_elsewhere(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = smtp_project(tmp_path, smtp_server.port)
    before = project.dump()
    output = send(project, "--at", AT)
    assert "qa@example.org" in output
    assert project.dump() == before  # nothing written: no row, no flag, no suppression
    [test] = smtp_server.messages
    assert test.rcpt_tos == ("qa@example.org",)
    assert test.message["To"] == "qa@example.org"
    assert str(test.message["Subject"]).startswith("[test] ")
    assert str(test.message["Message-ID"]).startswith("<test.")

    project.run("tick", "--at", AT)
    [row] = [d for d in project.deliveries() if d["rule_id"] == RULE and d["user_id"] == "sam"]
    assert row["status"] == "sent"
    [real] = [m for m in smtp_server.messages if m.message["Message-ID"] == row["message_id"]]
    assert real.rcpt_tos == ("sam@example.com",)
    assert test.message["Subject"] == "[test] " + str(real.message["Subject"])
    assert test.message["Message-ID"] != real.message["Message-ID"]
    for kind in ("plain", "html"):
        test_body = test.message.get_body((kind,))
        real_body = real.message.get_body((kind,))
        assert test_body is not None
        assert real_body is not None
        test_text = UNSUBSCRIBE.sub("/unsubscribe/T", test_body.get_content())
        real_text = UNSUBSCRIBE.sub("/unsubscribe/T", real_body.get_content())
        assert test_text == real_text
        assert "Sam" in test_text  # rendered for the user, not for the test address


def test_two_test_sends_are_two_emails_and_still_no_ledger_row(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = smtp_project(tmp_path, smtp_server.port)
    send(project, "--at", AT)
    send(project)  # now: long after the fixtures, so the rule is not due; the signup anchors
    assert project.deliveries() == []
    first, second = smtp_server.messages
    assert first.message["Message-ID"] != second.message["Message-ID"]
    assert first.message["Subject"] == second.message["Subject"]


def test_unknown_rule_user_and_guide_only_rules_are_clear_errors(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = smtp_project(tmp_path, smtp_server.port)
    cases = [
        (["--rule", "nope", "--user", "sam"], "unknown rule 'nope'"),
        (["--rule", RULE, "--user", "nobody"], "no user 'nobody'"),
        (["--rule", "abandoned-ingest-workflow", "--user", "sam"], "sends no email"),
    ]
    for args, message in cases:
        result = project.run("send-test", *args, "--to", "qa@example.org", ok=False)
        assert result.exit_code == 1
        assert message in result.output
    result = project.run("send-test", "--rule", RULE, "--user", "sam", "--to", "nope", ok=False)
    assert result.exit_code == 1
    assert "not an email address" in result.output
    assert smtp_server.messages == []
    assert project.deliveries() == []


def test_a_refusing_server_is_an_error_not_a_traceback(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    project = smtp_project(tmp_path, smtp_server.port)
    smtp_server.reply_next_rcpt("550 5.1.1 <qa@example.org>: user unknown")
    output = send(project, "--at", AT, ok=False)
    assert "550" in output
    assert project.deliveries() == []
