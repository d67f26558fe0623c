"""`lifecycle hash-password`: the password hash a console user's config entry holds."""

from __future__ import annotations

import sys

import click

from engine.cli.base import cli, friendly_errors
from engine.console.passwords import MIN_PASSWORD_CHARS, hash_password
from engine.errors import LifecycleError


@cli.command("hash-password")
@click.option("--user", "username", default="NAME", help="The username to show in the snippet.")
@click.option(
    "--role",
    type=click.Choice(["read_only", "operator"]),
    default="read_only",
    show_default=True,
    help="The role to show in the snippet.",
)
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from stdin.")
@friendly_errors
def hash_password_command(username: str, role: str, from_stdin: bool) -> None:
    """Hash a console password (scrypt) and print the console.users entry for config.yaml.
    The password is asked for twice, hidden (or read from stdin with --stdin); it is never
    stored or printed."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            f"Password (at least {MIN_PASSWORD_CHARS} characters)",
            hide_input=True,
            confirmation_prompt=True,
        )
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise LifecycleError(str(exc)) from None
    # click.echo, not rich: a hash wrapped to the terminal would no longer be one YAML string.
    click.echo(
        f'console:\n  users:\n    {username}:\n      role: {role}\n      password_hash: "{hashed}"'
    )
