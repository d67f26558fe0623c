"""What the console pages are built on: the daemon's own runner (its rules, store, renderer
and dry run, hot reloads included), the config, the clock, the gate."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from engine.clock import Clock
from engine.config import Config
from engine.console.access import Gate
from engine.runner import Runner

PAGE_SIZE = 50  # rows per page of every listing
MAX_PAGE = 10_000  # OFFSET beyond this many pages costs the database more than it helps
MAX_SEARCH = 320  # characters: the longest email address


@dataclass(frozen=True)
class ConsoleSetup:
    runner: Runner
    config: Config
    clock: Clock
    secret: str

    def gate(self) -> Gate:
        secure = urlsplit(self.config.api.public_url).scheme == "https"
        return Gate(self.config.console, self.secret, self.clock, secure=secure)


def offset(page: int) -> int:
    return (page - 1) * PAGE_SIZE
