"""How replays, diffs and explanations look: rich tables for people, JSON for programs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.table import Table

from engine.cli.fit import WIDE, Column, fitted_table
from engine.clock import isoformat
from engine.durations import format_duration
from engine.whatif.explain import Check, Explanation, verdict
from engine.whatif.replay import (
    CHANGES,
    OUTCOMES,
    Change,
    Entry,
    Timeline,
    by_persona,
    by_rule,
    summarize,
)

_STYLE = {"email": "green", "guide": "cyan", "held_out": "yellow", "skipped": "magenta"}
_MARK = {True: "[green]✓[/]", False: "[red]✗[/]", None: "[dim]·[/]"}


def entry_json(item: Entry) -> dict[str, Any]:
    return {
        "at": isoformat(item.at),
        "rule": item.rule_id,
        "user_id": item.user_id,
        "subject": item.key[1],
        "occurrence": item.occurrence,
        "persona": item.persona,
        "signup_source": item.signup_source,
        "outcome": item.outcome,
        "status": item.status,
        "reason": item.reason,
        "fire_at": isoformat(item.fire_at),
        "send_at": isoformat(item.send_at),
        "email": item.email if item.outcome == "email" else None,
        "guide": item.guide,
        "variant": item.variant,
    }


def period_json(timeline: Timeline) -> dict[str, Any]:
    period = timeline.period
    return {
        "from": isoformat(period.start),
        "to": isoformat(period.end),
        "step": format_duration(period.step),
    }


def timeline_json(timeline: Timeline, *, with_history: bool) -> dict[str, Any]:
    entries = timeline.entries
    return {
        **period_json(timeline),
        "with_history": with_history,
        "timeline": [entry_json(item) for item in entries],
        "summary": {
            "by_rule": _counts(summarize(entries, by_rule)),
            "by_persona": _counts(summarize(entries, by_persona)),
            "total": len(entries),
        },
        "errors": dict(timeline.errors),
    }


def _counts(groups: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    return {name: {o: counts[o] for o in OUTCOMES} for name, counts in groups.items()}


def timeline_table(
    entries: Sequence[Entry], *, limit: int | None = None, width: int = WIDE
) -> Table:
    columns = [
        Column("Fired / sends (UTC)", 16, 0, {"no_wrap": True}),
        Column("Rule", 12, 0, {"overflow": "fold"}),
        Column(_user_heading(entries[:limit]), 8, 0, {"overflow": "fold"}),
        Column("Persona/source", 12, 1, {"overflow": "fold"}),
        Column("Outcome", 8, 0, {"overflow": "fold"}),
        Column("Email", 12, 2, {"overflow": "fold"}),
        Column("Guide", 10, 1, {"overflow": "fold"}),
    ]
    rows = [
        [
            _when(item),
            item.rule_id,
            recipient(item),
            f"{item.persona or '-'}/{item.signup_source or '-'}",
            f"[{_STYLE.get(item.outcome, 'white')}]"
            + item.outcome
            + (f" ({item.reason})" if item.reason else "")
            + "[/]"
            + (f"\n[dim]variant {item.variant}[/]" if item.variant else ""),
            (item.email or "") if item.outcome == "email" else "",
            item.guide or "",
        ]
        for item in entries[:limit]
    ]
    caption = None
    if limit is not None and len(entries) > limit:
        caption = f"first {limit} of {len(entries)} rows (--limit)"
    return fitted_table(
        columns, rows, width, caption=caption, title="Replay: what would have been sent"
    )


def _user_heading(shown: Sequence[Entry]) -> str:
    """v2 rows name their firing under the user; a table of v1 rows (one per rule and user)
    reads as it always did."""
    return "User\n[dim]firing[/]" if any(item.scoped for item in shown) else "User"


def recipient(item: Entry) -> str:
    """The user and, for an account's firing, an occurrence or a repeat, which firing it is
    (the rest of the ledger key)."""
    return item.user_id + (f"\n[dim]{firing(item)}[/]" if item.scoped else "")


def firing(item: Entry) -> str:
    """`account:A`, `event:12`, `#2`, `account:A #2` ...: the subject when it is not the
    user, then the occurrence."""
    _, subject, occurrence = item.key
    parts = ([] if subject == item.user_id else [subject]) + ([occurrence] if occurrence else [])
    return " ".join(parts)


def _when(item: Entry) -> str:
    """The tick that fired and, when quiet hours move the email, when it goes out."""
    fired = _short(item.at)
    if item.send_at is None or item.send_at == item.at:
        return fired
    return f"{fired}\n[cyan]→ {_short(item.send_at)}[/]"


def _short(value: datetime | None) -> str:
    return (isoformat(value) or "").replace("T", " ").removesuffix("Z")[:16]


def summary_table(title: str, groups: dict[str, Counter[str]]) -> Table:
    table = Table(title=title, header_style="bold")
    table.add_column(title.removeprefix("Per ").capitalize())
    for name in (*OUTCOMES, "total"):
        table.add_column(name, justify="right")
    for group, counts in groups.items():
        table.add_row(group, *(str(counts[o]) for o in OUTCOMES), str(sum(counts.values())))
    return table


# ---- diff ------------------------------------------------------------------------------


def change_json(change: Change) -> dict[str, Any]:
    rule_id, subject, occurrence = change.key
    either = change.after or change.before
    assert either is not None
    return {
        "rule": rule_id,
        "user_id": either.user_id,  # the proposed recipient, else the baseline's
        "subject": subject,
        "occurrence": occurrence,
        "change": change.kind,
        "before": entry_json(change.before) if change.before else None,
        "after": entry_json(change.after) if change.after else None,
    }


def diff_json(
    changes: Sequence[Change], totals: dict[str, Counter[str]], timeline: Timeline
) -> dict[str, Any]:
    return {
        **period_json(timeline),
        "totals": {k: totals["*"][k] for k in CHANGES},
        "by_rule": {
            rule: {k: counts[k] for k in CHANGES}
            for rule, counts in sorted(totals.items())
            if rule != "*"
        },
        "changes": [change_json(c) for c in changes],
    }


def diff_table(changes: Sequence[Change], *, limit: int | None = None, width: int = WIDE) -> Table:
    sides = [c.after or c.before for c in changes[:limit]]
    columns = [
        Column("Rule", 12, 0, {"overflow": "fold"}),
        Column(_user_heading([e for e in sides if e is not None]), 8, 0, {"overflow": "fold"}),
        Column("Change", 7, 0, {"no_wrap": True}),
        Column("Before (--against)", 16, 1, {"no_wrap": True}),
        Column("After (--rules)", 16, 0, {"no_wrap": True}),
    ]
    rows = []
    for change in changes[:limit]:
        either = change.after or change.before
        assert either is not None
        rows.append(
            [
                change.key[0],
                recipient(either),
                change.kind,
                _side(change.before),
                _side(change.after),
            ]
        )
    caption = None
    if limit is not None and len(changes) > limit:
        caption = f"first {limit} of {len(changes)} changes (--limit)"
    return fitted_table(columns, rows, width, caption=caption, title="Messages that change")


def _side(item: Entry | None) -> str:
    if item is None:
        return "[dim]-[/]"
    reason = f" ({item.reason})" if item.reason else ""
    # An account's firing may go to another member under the other rules.
    to = f"\nto {item.user_id}" if item.key[1] != item.user_id else ""
    return f"{item.outcome}{reason}{to}\n{_when(item)}"


def diff_totals_table(totals: dict[str, Counter[str]]) -> Table:
    table = Table(title="Changes per rule", header_style="bold")
    table.add_column("Rule")
    for kind in CHANGES:
        table.add_column(kind, justify="right")
    for rule, counts in sorted(totals.items()):
        if rule != "*":
            table.add_row(rule, *(str(counts[k]) for k in CHANGES))
    table.add_row("[bold]total[/]", *(f"[bold]{totals['*'][k]}[/]" for k in CHANGES))
    return table


# ---- explain ---------------------------------------------------------------------------


def checks_json(checks: Sequence[Check]) -> list[dict[str, Any]]:
    return [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]


def explain_json(explanation: Explanation) -> dict[str, Any]:
    planned = explanation.planned
    return {
        "rule": explanation.rule.id,
        "user_id": explanation.user_id,
        "at": isoformat(explanation.at),
        "enabled": explanation.rule.enabled,
        "fires": explanation.fires,
        "verdict": verdict(explanation),
        "conditions": checks_json(explanation.checks),
        "delivery": checks_json(explanation.delivery()),
        "planned": None
        if planned is None
        else {
            "subject": planned.subject,
            "occurrence": planned.occurrence,
            "status": planned.status.value,
            "reason": planned.reason,
            "fire_at": isoformat(planned.fire_at),
            "send_at": isoformat(planned.send_at),
            "email_to": planned.email_to,
            "guide": planned.guide_id,
            "variant": planned.variant,
        },
    }


def explain_table(explanation: Explanation) -> Table:
    title = f"{explanation.rule.id} for {explanation.user_id} at {isoformat(explanation.at)}"
    table = Table(title=title, header_style="bold", show_header=False, box=None)
    table.add_column("", no_wrap=True)
    table.add_column("Condition", no_wrap=True)
    table.add_column("Detail", overflow="fold")
    for check in (*explanation.checks, *explanation.delivery()):
        table.add_row(_MARK[check.ok], check.name, check.detail)
    return table


def explain_verdict(explanation: Explanation) -> str:
    style = "green" if explanation.fires else "red"
    return f"[{style}]{verdict(explanation)}[/]"
