"""What every command shares: the `cli` group, the config/store state, friendly errors, ISO
8601 times. The clock is read by the commands, once each, and passed down."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape

from engine.app.wiring import App, open_app, open_store
from engine.clock import parse_instant
from engine.config import Config, config_path, config_required, load_config
from engine.errors import LifecycleError, ProblemsError
from engine.store import Store
from engine.telemetry.logs import TEXT_FORMAT
from engine.telemetry.logs import configure as configure_logs

F = TypeVar("F", bound=Callable[..., Any])
out = Console()
SERVICES = ("run", "api")  # long-running: their logs are collected, as JSON lines by default
err = Console(stderr=True)


@dataclass
class State:
    config_path: str | None
    stores: list[Store] = field(default_factory=list)

    def config(self) -> Config:
        path = config_path(self.config_path, os.environ)
        return load_config(path, required=config_required(self.config_path, os.environ))

    def app(self) -> App:
        app = open_app(self.config())
        self.stores.append(app.store)
        return app

    def store(self, config: Config) -> Store:
        store = open_store(config)
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.engine.dispose()


def friendly_errors(command: F) -> F:
    """Known errors become clear messages and exit 1, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ProblemsError as exc:
            for problem in exc.problems:
                # Escaped: problems quote patterns (`[a-z0-9_-]+`), which rich reads as markup.
                err.print(f"[red]error[/]: {escape(str(problem))}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except LifecycleError as exc:
            err.print(f"[red]error[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


class Instant(click.ParamType):  # type: ignore[type-arg]
    name = "ISO8601"

    def convert(self, value: Any, param: Any, ctx: Any) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_instant(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.group()
@click.option(
    "--config",
    "config_file",
    metavar="PATH",
    help="Config file (default ./config.yaml, or $LIFECYCLE_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    help="Logs of `run` and `api`: JSON lines on stdout (default), or text for people.",
)
@click.version_option(package_name="lifecycle")
@click.pass_context
def cli(ctx: click.Context, config_file: str | None, verbose: int, log_format: str | None) -> None:
    """lifecycle: rules-as-code lifecycle emails and in-app guides."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    if ctx.invoked_subcommand in SERVICES:
        configure_logs(log_format or "json", level)
    else:  # the other commands print their results on stdout: logs go to stderr, as text
        logging.basicConfig(level=level, format=TEXT_FORMAT)
    ctx.obj = State(config_file)
    ctx.call_on_close(ctx.obj.close)


def options(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """Several click options as one decorator; --help lists them in the order given."""

    def apply(command: F) -> F:
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


def period_options(start_help: str, end_help: str, *, required: bool = False) -> Callable[[F], F]:
    """`--from` and `--to`, passed as `start` and `end`: the period a command looks at (each
    command says in its help what the ends mean to it)."""
    return options(
        click.option("--from", "start", type=Instant(), required=required, help=start_help),
        click.option("--to", "end", type=Instant(), required=required, help=end_help),
    )
