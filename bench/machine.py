"""What the figures were measured on."""

from __future__ import annotations

import os
import platform
import sqlite3
from dataclasses import dataclass, field


@dataclass
class Machine:
    platform: str = field(default_factory=platform.platform)
    processor: str = field(default_factory=lambda: platform.processor() or platform.machine())
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 0)
    python: str = field(default_factory=lambda: platform.python_version())
    sqlite: str = sqlite3.sqlite_version
    postgresql: str | None = None  # the server's version(), when PostgreSQL was measured
