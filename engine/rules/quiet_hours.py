"""Quiet hours as rules and the config write them: a local time window with no email. The
decision of when an email may go out is `engine.decide.send_time`'s."""

from __future__ import annotations

from datetime import time
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


class QuietHours(BaseModel):
    """No email between `start` and `end` local time (`21:00`-`08:00` spans midnight)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, int):  # YAML 1.1 reads an unquoted 21:00 as 1260
            raise ValueError("write times in quotes, e.g. '21:00'")
        return value

    def contains(self, local: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end
