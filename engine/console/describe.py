"""A rule as the rules page shows it: short texts for its audience, timing, channels, goal
and holdout, from the validated model (what the engine runs, not the YAML as written)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.durations import format_duration
from engine.rules.language import Rule, RuleSet


@dataclass(frozen=True)
class RuleSummary:
    id: str
    description: str
    where: str
    enabled: bool
    audience: str
    timing: str
    channels: str
    goal: str
    holdout: str


def summarize(rules: RuleSet, rule: Rule, base: Path) -> RuleSummary:
    """`base`: the config's directory; rule files below it are named relative to it."""
    return RuleSummary(
        id=rule.id,
        description=rule.description,
        where=_relative(rules.where(rule.id), base),
        enabled=rule.enabled,
        audience=_audience(rule),
        timing=_timing(rule),
        channels=_channels(rule),
        goal=_goal(rule),
        holdout=f"{rule.holdout:g}%" if rule.holdout else "none",
    )


def _relative(where: str, base: Path) -> str:
    path = Path(where)
    try:
        return str(path.relative_to(base.resolve()))
    except ValueError:
        return where


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(", ", ": "))


def _audience(rule: Rule) -> str:
    parts = [
        f"{key}: {_compact(value)}"
        for key, value in rule.audience.model_dump(
            mode="json", exclude_defaults=True, by_alias=True
        ).items()
    ]
    return "; ".join(parts) or "everyone"


def _timing(rule: Rule) -> str:
    when = rule.when
    parts = [f"since {when.anchor_name}", f"after {format_duration(when.after)}"]
    if when.expires is not None:
        parts.append(f"expires {format_duration(when.expires)}")
    for name in ("not_done", "done", "account_not_done", "account_done"):
        items = getattr(when, name)
        if items:
            parts.append(f"{name} {', '.join(item.event for item in items)}")
    if rule.repeat_after is not None:
        parts.append(f"repeat after {format_duration(rule.repeat_after)}")
    if rule.once_per != "user":
        parts.append(f"once per {rule.once_per}")
    return "; ".join(parts)


def _channels(rule: Rule) -> str:
    parts = []
    if rule.send.email:
        parts.append(f"email {rule.send.email}")
    if rule.send.guide:
        ttl = f" ({format_duration(rule.send.guide_ttl)})" if rule.send.guide_ttl else ""
        parts.append(f"guide {rule.send.guide}{ttl}")
    return "; ".join(parts)


def _goal(rule: Rule) -> str:
    if rule.goal is None:
        return "none"
    return f"{rule.goal.event} within {format_duration(rule.goal.within)}"
