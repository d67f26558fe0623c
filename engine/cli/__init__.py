"""The `lifecycle` command line. The clock is read here, once per command, and passed down.

One module per family of commands; importing them registers them on the `cli` group."""

from __future__ import annotations

from engine.cli import core, demo, replay, reports, send_test, tokens
from engine.cli.base import cli

__all__ = ["cli", "core", "demo", "main", "replay", "reports", "send_test", "tokens"]


def main() -> None:
    cli(prog_name="lifecycle")
