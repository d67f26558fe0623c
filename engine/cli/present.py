"""How results look: rich tables for people, JSON for programs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from engine.cli.fit import WIDE, Column, fitted_table
from engine.clock import isoformat
from engine.decide.firing import Planned
from engine.model import Status
from engine.runner import Preview, TickReport


def dry_run_status(preview: Preview) -> str:
    status = preview.planned.status
    if status is Status.HELD_OUT:
        return "held_out"
    if status is Status.SKIPPED:
        return "skipped"
    return "send"


def preview_json(preview: Preview, *, show_body: bool = False) -> dict[str, Any]:
    p = preview.planned
    email: dict[str, Any] | None = None
    if p.sends_email:
        email = {
            "template": p.email_template,
            "to": p.email_to,
            "subject": preview.rendered.subject if preview.rendered else None,
            "message_id": p.message_id,
        }
        if preview.render_error:
            email["error"] = preview.render_error
        if show_body:
            email["text"] = preview.rendered.text if preview.rendered else None
            email["html"] = preview.rendered.html if preview.rendered else None
    guide = {"id": p.guide_id, "expires_at": isoformat(p.guide_expires_at)} if p.guide_id else None
    # The body and the host only: a webhook's URL may be a secret (a Slack one's is).
    webhook = (
        {"body": p.webhook_template, "host": preview.webhook_host} if p.sends_webhook else None
    )
    return {
        "rule": p.rule_id,
        "user_id": p.user_id,
        # The rest of the ledger key: the user (v1), or `account:<id>` / `user:<id>` for
        # `once_per: account`; '' for a first firing, else the occurrence or repeat.
        "subject": p.subject,
        "occurrence": p.occurrence,
        "persona": p.candidate.user.get("persona"),
        "signup_source": p.candidate.user.get("signup_source"),
        "status": dry_run_status(preview),
        "reason": p.reason,
        "variant": p.variant,
        "anchor_at": isoformat(p.anchor_at),
        "fire_at": isoformat(p.fire_at),
        "send_at": isoformat(p.send_at),
        "email": email,
        "guide": guide,
        "webhook": webhook,
    }


_STYLE = {"send": "green", "held_out": "yellow", "skipped": "magenta"}


def preview_table(previews: list[Preview], *, limit: int | None = None, width: int = WIDE) -> Table:
    """The dry run, one row per firing; in fewer than `width` columns the persona, guide
    and email columns go first (`engine.cli.fit`)."""
    shown = previews[:limit]
    scoped = any(firing(p.planned) for p in shown)
    columns = [
        Column("Rule", 12, 0, {"overflow": "fold", "ratio": 3}),
        # A v1 dry run (one row per rule and user) reads as it always did.
        Column(
            "User\n[dim]firing[/]" if scoped else "User", 8, 0, {"overflow": "fold", "ratio": 2}
        ),
        Column("Persona/source", 12, 1, {"overflow": "fold", "ratio": 2}),
        Column("Status", 8, 0, {"overflow": "fold"}),
        Column("Fire at / send at (UTC)", 16, 3, {"no_wrap": True}),
        Column("Email: template, to, subject", 18, 2, {"overflow": "fold", "ratio": 4}),
        Column("Guide", 10, 1, {"overflow": "fold", "ratio": 2}),
    ]
    rows = []
    for preview in shown:
        row = preview_json(preview)
        status = row["status"] + (f" ({row['reason']})" if row["reason"] else "")
        variant = f"\n[dim]variant {escape(row['variant'])}[/]" if row["variant"] else ""
        email = ""
        if row["email"]:
            # Escaped: rich reads markup, and render errors quote template text.
            error = escape(str(row["email"].get("error")))
            subject = escape(row["email"]["subject"] or "") or f"[red]{error}[/]"
            to = escape(str(row["email"]["to"]))
            email = f"{row['email']['template']}\n{to}\n[dim]{subject}[/]"
        guide = row["guide"]["id"] if row["guide"] else ""
        which = firing(preview.planned)
        rows.append(
            [
                row["rule"],
                escape(str(row["user_id"])) + (f"\n[dim]{which}[/]" if which else ""),
                escape(f"{row['persona']}/{row['signup_source']}"),
                f"[{_STYLE[row['status']]}]{status}[/]{variant}",
                _when(row),
                email,
                guide,
            ]
        )
    caption = None
    if limit is not None and len(previews) > limit:
        caption = f"first {limit} of {len(previews)} rows (--limit)"
    return fitted_table(
        columns,
        rows,
        width,
        caption=caption,
        title="Dry run: what a tick would do",
        expand=True,
    )


def firing(planned: Planned) -> str:
    """Which firing a row is beyond (rule, user): `account:A`, `event:12`, `key:w1`, `#2`,
    `account:A #2`; '' for a v1 row."""
    subject = "" if planned.subject == planned.user_id else planned.subject
    return " ".join(part for part in (subject, planned.occurrence) if part)


def preview_summary(previews: list[Preview]) -> Table:
    counts: dict[str, Counter[str]] = {}
    for preview in previews:
        counts.setdefault(preview.planned.rule_id, Counter())[dry_run_status(preview)] += 1
    table = Table(title="Per rule", header_style="bold")
    for name in ("Rule", "send", "held_out", "skipped", "total"):
        table.add_column(name, justify="right" if name != "Rule" else "left")
    for rule_id, c in counts.items():
        table.add_row(
            rule_id, str(c["send"]), str(c["held_out"]), str(c["skipped"]), str(sum(c.values()))
        )
    return table


def tick_table(report: TickReport) -> Table:
    """Rows written per rule: emails queued, guide-only rows, held out, skipped, errors."""
    table = Table(title=f"Tick at {isoformat(report.now)}: new ledger rows", header_style="bold")
    # Headers stacked on two lines: at 80 columns the rule ids keep the width.
    columns = {
        "email\nqueued": Status.PENDING.value,
        "guide\nonly": Status.SENT.value,
        "held\nout": Status.HELD_OUT.value,
        "skipped": Status.SKIPPED.value,
    }
    by_rule = report.by_rule()
    # Only a tick with a failed rule has the column: it is the one that made 80 too narrow.
    if any(counter.get("error") for counter in by_rule.values()):
        columns["error"] = "error"
    table.add_column("Rule", overflow="fold")
    for title in columns:
        table.add_column(title, justify="right")
    for rule_id, counter in sorted(by_rule.items()):
        table.add_row(rule_id, *(str(counter.get(s, 0)) for s in columns.values()))
    return table


def _when(row: dict[str, Any]) -> str:
    """When the rule fired and, if quiet hours move the email, when it goes out."""
    fire, send = _short(row["fire_at"]), _short(row["send_at"])
    return fire if not send or send == fire else f"{fire}\n[cyan]→ {send}[/]"


def _short(value: str | None) -> str:
    return (value or "").replace("T", " ").removesuffix("Z")[:16]


def print_problems(console: Console, problems: list[Any]) -> None:
    for problem in problems:
        console.print(str(problem), markup=False, highlight=False)
