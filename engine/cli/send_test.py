"""`lifecycle send-test`: check a template in a real inbox (engine.app.send_test)."""

from __future__ import annotations

from datetime import datetime
from email.utils import parseaddr

import click

from engine.app.send_test import send_test as run_send_test
from engine.cli.base import Instant, State, cli, friendly_errors, out
from engine.clock import SystemClock
from engine.errors import LifecycleError


@cli.command("send-test")
@click.option("--rule", "rule_id", required=True, help="The rule whose email to send.")
@click.option("--user", "user_id", required=True, help="The user it is rendered for.")
@click.option("--to", "to", required=True, metavar="ADDRESS", help="Where to send it instead.")
@click.option("--at", "at", type=Instant(), help="Render as a tick at this time would.")
@click.pass_obj
@friendly_errors
def send_test(state: State, rule_id: str, user_id: str, to: str, at: datetime | None) -> None:
    """Render USER's email for RULE as the dispatcher would and send it, subject prefixed
    "[test]", to ADDRESS through the configured transport. Writes nothing to the ledger."""
    if "@" not in parseaddr(to)[1]:
        raise LifecycleError(f"--to: not an email address: {to!r}")
    app = state.app()
    sent = run_send_test(app.runner, rule_id, user_id, to, at or SystemClock().now())
    anchor = "" if sent.anchor == "plan" else " (anchored on the signup: not due for this user)"
    out.print(
        f"sent {sent.subject!r} ({sent.rule_id} for {sent.user_id}) to {sent.to}{anchor}: "
        f"{sent.receipt}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
