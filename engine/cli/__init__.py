"""The `lifecycle` command line. The clock is read here, once per command, and passed down.

One module per family of commands; importing them registers them on the `cli` group."""

from __future__ import annotations

from engine.cli import console, core, db, demo, replay, reports, send_test, tokens
from engine.cli.base import cli
from engine.cli.examples import add_examples

__all__ = [
    "cli",
    "console",
    "core",
    "db",
    "demo",
    "main",
    "replay",
    "reports",
    "send_test",
    "tokens",
]


add_examples(cli)  # after every module above has registered its commands


def main() -> None:
    cli(prog_name="lifecycle")
