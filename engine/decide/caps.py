"""The per-user frequency cap: at most N emails in any 24 hours around each send. Pure logic;
the runner hands it a way to fetch each user's already scheduled or sent emails."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from engine.decide.firing import Planned, capped
from engine.rules.language import Rule

WINDOW = timedelta(hours=24)
Fetch = Callable[[Sequence[str]], dict[str, list[datetime]]]


class FrequencyCap:
    """Remembers, for one tick, every email it let through, so that rules evaluated later in
    the tick (lower priority) are the ones skipped."""

    def __init__(self, limit: int | None, fetch: Fetch) -> None:
        self.limit = limit
        self.fetch = fetch
        self.times: dict[str, list[datetime]] = {}

    def forget(self) -> None:
        """Drop what it remembered: a tick calls this between rules, once the ledger holds
        every email it let through, and some it never saw (rows written in SQL)."""
        self.times.clear()

    def apply(self, rule: Rule, batch: list[Planned]) -> list[Planned]:
        if self.limit is None:
            return batch
        self._load([p.user_id for p in batch if p.sends_email])
        return [self._one(rule, p) for p in batch]

    def _load(self, user_ids: list[str]) -> None:
        missing = sorted({u for u in user_ids if u not in self.times})
        if missing:
            found = self.fetch(missing)
            for user_id in missing:
                self.times[user_id] = list(found.get(user_id, []))

    def _one(self, rule: Rule, planned: Planned) -> Planned:
        if not planned.sends_email or planned.send_at is None or self.limit is None:
            return planned
        times = self.times[planned.user_id]
        near = sum(1 for t in times if abs(t - planned.send_at) < WINDOW)
        if rule.frequency_cap and near >= self.limit:
            return capped(planned)
        times.append(planned.send_at)  # exempt rules' emails still count against the others
        return planned
