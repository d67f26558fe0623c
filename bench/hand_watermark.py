"""The hand-written baseline of an idle or steady tick: the least any incremental evaluator
must read to know who to look at again, written as plain SQL by a person for the default pack.

One query per tick: the events ingested past the watermark (the id range), the users whose
signup came into each signup rule's window since the last tick (one range per distinct
`after`), and the anchor events that came into each event rule's window (the (name,
occurred_at) range). It decides nothing and writes nothing; the engine's idle tick does
that work and also reads its marks, the change log, the account members and the windows
that close (`engine/sql/touched.py`), so the ratio says what that costs over the bare reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, text

from bench.timing import timed
from engine.rules.language import RuleSet
from engine.sql.schema import UTCDateTime


@dataclass
class WatermarkFigures:
    seconds: list[float] = field(default_factory=list)
    users: int = 0  # the users it found (to look at again)


@dataclass(frozen=True)
class Window:
    """One range the query reads: signups (`event` None) or that event, shifted by `after`."""

    key: str
    event: str | None
    after: timedelta


def watermark_sql(rules: RuleSet) -> tuple[str, list[Window]]:
    parts = ["SELECT user_id FROM events WHERE id > :event_id"]
    windows = [
        Window(f"s{index}", None, after)
        for index, after in enumerate(
            sorted({r.when.after for r in rules.enabled if r.when.anchor_event is None})
        )
    ]
    windows += [
        Window(f"e{index}", rule.when.anchor_event, rule.when.after)
        for index, rule in enumerate(r for r in rules.enabled if r.when.anchor_event is not None)
    ]
    for w in windows:
        if w.event is None:
            parts.append(
                f"SELECT id FROM users WHERE signed_up_at > :from_{w.key} "
                f"AND signed_up_at <= :to_{w.key}"
            )
        else:
            parts.append(
                f"SELECT user_id FROM events WHERE name = :name_{w.key} "
                f"AND occurred_at > :from_{w.key} AND occurred_at <= :to_{w.key}"
            )
    return " UNION ".join(parts), windows


def run_watermark(
    engine: Engine, rules: RuleSet, since: datetime, now: datetime, event_id: int, repeats: int
) -> WatermarkFigures:
    """`repeats` timed runs of the query for a tick at `now` after one at `since`."""
    sql, windows = watermark_sql(rules)
    params: dict[str, object] = {"event_id": event_id}
    binds = []
    for w in windows:
        params[f"from_{w.key}"], params[f"to_{w.key}"] = since - w.after, now - w.after
        binds += [bindparam(f"{end}_{w.key}", type_=UTCDateTime()) for end in ("from", "to")]
        if w.event is not None:
            params[f"name_{w.key}"] = w.event
    statement = text(sql).bindparams(*binds)
    figures = WatermarkFigures()
    with engine.connect() as connection:
        connection.execute(statement, params).all()  # untimed: a warm cache, as a daemon's
        for _ in range(repeats):
            seconds, found = timed(lambda: connection.execute(statement, params).all())
            figures.seconds.append(seconds)
            figures.users = len(found)
    return figures
