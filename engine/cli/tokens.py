"""`lifecycle guide-token`: mint a user's guide token, for the product's backend to hand its
frontend (which then holds no API key)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import click

from engine.cli.base import State, cli, err, friendly_errors
from engine.clock import SystemClock, isoformat
from engine.durations import parse_duration
from engine.errors import DurationError, LifecycleError
from engine.http.tokens import guide_token


class Lifetime(click.ParamType):  # type: ignore[type-arg]
    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> timedelta:
        try:
            lifetime = parse_duration(value)
        except DurationError as exc:
            self.fail(str(exc), param, ctx)
        if lifetime <= timedelta(0):
            self.fail("must be longer than 0", param, ctx)
        return lifetime


@cli.command("guide-token")
@click.argument("user_id")
@click.option(
    "--ttl",
    type=Lifetime(),
    default="1h",
    show_default=True,
    help="How long the token opens the user's guides (e.g. 30m, 1h, 1d): keep it short.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
@friendly_errors
def guide_token_command(state: State, user_id: str, ttl: timedelta, fmt: str) -> None:
    """Print a token that opens USER_ID's guides, and no one else's, until it expires. The
    frontend sends it as `Authorization: Bearer TOKEN`; the API accepts it when
    api.guide_tokens is on. Signed with api.secret_key."""
    if not user_id:
        raise click.BadParameter("give a user id (the id the product identifies users by)")
    config = state.config()
    if not config.api.secret_key:
        raise LifecycleError("api.secret_key is empty: set it to a long random secret first")
    expires_at = SystemClock().now() + ttl
    token = guide_token(config.api.secret_key, user_id, expires_at)
    if not config.api.guide_tokens:
        err.print(
            "warning: api.guide_tokens is off: the API refuses user tokens until it is on",
            highlight=False,
            markup=False,
        )
    if fmt == "json":
        body = {"user_id": user_id, "token": token, "expires_at": isoformat(expires_at)}
        click.echo(json.dumps(body, ensure_ascii=False))
    else:
        click.echo(token)
