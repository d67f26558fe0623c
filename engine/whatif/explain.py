"""Why a rule does or does not fire for one user at one time.

One query for that user selects each of the rule's compiled conditions (`compile_rule`, the
very clauses `candidates()` ANDs) as a 1/0 column, with the anchor time and the events or
ledger row that made a condition fail. What happens once it fires (holdout, skip reasons,
quiet hours, the daily cap) comes from the runner's own plan for that user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.clock import isoformat
from engine.decide.firing import Planned
from engine.durations import format_duration
from engine.errors import LifecycleError
from engine.model import Status
from engine.rules.language import EventItem, Ops, Rule
from engine.runner import Runner
from engine.sql.candidates import Compiled, compile_rule
from engine.sql.explain import explain_query

# Conditions that only mean something once the user has an anchor.
NEEDS_ANCHOR = ("after", "expires", "not_done", "done", "account_")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not evaluated (it needs an anchor the user does not have)
    detail: str


@dataclass(frozen=True)
class Explanation:
    rule: Rule
    user_id: str
    at: datetime
    checks: tuple[Check, ...]  # the rule's conditions, in order
    planned: Planned | None  # what the tick would write, when the conditions hold

    @property
    def matches(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def fires(self) -> bool:
        return self.matches and self.rule.enabled

    def delivery(self) -> tuple[Check, ...]:
        return delivery_checks(self.rule, self.planned, self.at) if self.planned else ()


def explain(runner: Runner, rule_id: str, user_id: str, at: datetime) -> Explanation:
    rule = _rule(runner, rule_id)
    row = runner.store.reads.first_row(explain_query(rule, user_id, at))
    if row is None:
        raise LifecycleError(f"unknown user {user_id!r}")
    checks = interpret(rule, compile_rule(rule, at), row, at)
    planned = None
    if all(check.ok for check in checks):
        # Read the plan to its end: it streams from a server-side cursor.
        batches = list(runner.plan(at, rule_ids=[rule.id], user_ids=[user_id]))
        mine = [p for batch in batches for p in batch if p.occurrence == row["occurrence"]]
        planned = mine[0] if mine else None
    return Explanation(rule, user_id, at, tuple(checks), planned)


def _rule(runner: Runner, rule_id: str) -> Rule:
    try:
        return runner.rules.get(rule_id)
    except KeyError:
        known = ", ".join(sorted(r.id for r in runner.rules.rules))
        raise LifecycleError(f"unknown rule {rule_id!r} (known: {known})") from None


# ---- reading the row (pure) ------------------------------------------------------------


def interpret(rule: Rule, compiled: Compiled, row: dict[str, Any], now: datetime) -> list[Check]:
    has_anchor = bool(row[f"check_{_index(compiled, 'anchor')}"])
    checks = []
    for index, (name, _) in enumerate(compiled.conditions):
        if not has_anchor and name.startswith(NEEDS_ANCHOR):
            checks.append(Check(name, None, "not evaluated: no anchor"))
            continue
        ok = bool(row[f"check_{index}"])
        checks.append(Check(name, ok, _detail(rule, name, ok, row, now)))
    if compiled.one_per_account:
        checks.append(_member_check(checks, row))
    return checks


def _member_check(checks: list[Check], row: dict[str, Any]) -> Check:
    """`once_per: account`: of the members it matches, the rule fires for one."""
    if not all(check.ok for check in checks):
        return Check("account_member", None, "not evaluated: a condition fails")
    chosen, account = row["chosen_member"], _account(row)
    if chosen == row["id"]:
        return Check("account_member", True, f"the earliest-signed-up matching member of {account}")
    detail = f"{account} fires for {chosen}, its earliest-signed-up matching member"
    return Check("account_member", False, detail)


def _account(row: dict[str, Any]) -> str:
    return f"account {row['account_id']}" if row["account_id"] else "the user's own account"


def _index(compiled: Compiled, name: str) -> int:
    return [n for n, _ in compiled.conditions].index(name)


def _detail(rule: Rule, name: str, ok: bool, row: dict[str, Any], now: datetime) -> str:
    if name.startswith("audience."):
        return _audience_detail(rule, name.removeprefix("audience."), row)
    if name.startswith("done."):
        return _done_detail(rule, name.removeprefix("done."), ok, row, now)
    if name.endswith("]"):
        kind, index = name.removesuffix("]").split("[")
        return item_detail(rule, kind, int(index), ok, row, now)
    detail = {
        "anchor": _anchor_detail,
        "after": _after_detail,
        "expires": _expires_detail,
        "not_done": _not_done_detail,
        "not_delivered": _delivered_detail,
    }[name]
    return detail(rule, ok, row, now)


def _audience_detail(rule: Rule, key: str, row: dict[str, Any]) -> str:
    if key.startswith("account."):
        trait = key.removeprefix("account.")
        traits = row["account_traits"]
        if traits is None:
            facts = f"{_account(row)} has no traits"
        else:
            actual = repr(traits[trait]) if trait in traits else "absent"
            facts = f"{_account(row)}'s trait {trait} is {actual}"
        return f"{facts}; wants {wants(rule.audience.account[trait])}"
    if key.startswith("traits."):
        trait = key.removeprefix("traits.")
        traits = row["traits"] or {}
        actual = repr(traits[trait]) if trait in traits else "absent"
        return f"trait {trait} is {actual}; wants {wants(rule.audience.traits[trait])}"
    ops = getattr(rule.audience, key)
    return f"{key} is {row[key]!r}; wants {wants(ops)}"


def wants(ops: Ops) -> str:
    """A condition as rule authors write it: `'sales'`, `in ['a', 'b']`, `gte 3, lt 50`."""
    given = ops.model_dump(by_alias=True, exclude_none=True)
    if list(given) == ["eq"]:
        return repr(given["eq"])
    return ", ".join(f"{op} {_plain(value)}" for op, value in given.items())


def _plain(value: Any) -> str:
    return repr(list(value)) if isinstance(value, tuple) else repr(value)


def _anchor_detail(rule: Rule, ok: bool, row: dict[str, Any], now: datetime) -> str:
    since = rule.when.anchor_name
    if rule.when.anchored_on_signup:
        return f"signed up at {_t(row['anchor_at'])}" if ok else "no signup time"
    if rule.when.anchored_on_account:
        return _account_anchor(ok, row)
    where = f" with {_where(rule)}" if rule.when.anchor_where else ""
    if ok:
        which, occurrence = _which(rule, row), _occurrence(rule, row)
        return f"{which} {since}{where}{occurrence} at {_t(row['anchor_at'])}"
    count = row["since_count"]
    others = f" ({count} {since} event(s), none matching)" if count and where else ""
    return f"no {since} event{where}{others}"


def _account_anchor(ok: bool, row: dict[str, Any]) -> str:
    if not row["account_id"]:
        return f"signed up at {_t(row['anchor_at'])} (no account)" if ok else "no signup time"
    if ok:
        return f"account {row['account_id']}'s first member signed up at {_t(row['anchor_at'])}"
    return f"no member of account {row['account_id']} has a signup time"


def _which(rule: Rule, row: dict[str, Any]) -> str:
    if rule.once_per == "occurrence" and rule.when.occurrence_key is None:
        return "the" if rule.when.occurrence == "first" else "last"
    return rule.when.occurrence


def _occurrence(rule: Rule, row: dict[str, Any]) -> str:
    """Which occurrence the anchor is: its key, or the event itself."""
    if rule.once_per != "occurrence":
        return ""
    if rule.when.occurrence_key is not None:
        value = str(row["occurrence"]).removeprefix("key:")
        return f" of {rule.when.occurrence_key} {value!r}"
    return f" (event {row['anchor_event_id']})"


def _where(rule: Rule) -> str:
    return _conditions(rule.when.anchor_where)


def _after_detail(rule: Rule, ok: bool, row: dict[str, Any], now: datetime) -> str:
    fire_at = row["anchor_at"] + rule.when.after
    after = f"anchor + {format_duration(rule.when.after)}"
    if row["anchor_at"] > now:
        return f"too early: the anchor ({_t(row['anchor_at'])}) is after {_t(now)}"
    return f"due since {_t(fire_at)} ({after})" if ok else f"too early: fires at {_t(fire_at)}"


def _expires_detail(rule: Rule, ok: bool, row: dict[str, Any], now: datetime) -> str:
    closes = row["anchor_at"] + rule.when.after + rule.expires
    span = f"fire time + {format_duration(rule.expires)}"
    return f"open until {_t(closes)} ({span})" if ok else f"expired since {_t(closes)} ({span})"


def _not_done_detail(rule: Rule, ok: bool, row: dict[str, Any], now: datetime) -> str:
    names = ", ".join(item.event for item in rule.when.not_done if item.plain)
    if ok:
        return f"no {names} between the anchor and {_t(now)}"
    return f"{row['not_done_name']} at {_t(row['not_done_at'])}"


def _done_detail(rule: Rule, name: str, ok: bool, row: dict[str, Any], now: datetime) -> str:
    index = [item.event if item.plain else None for item in rule.when.done].index(name)
    at = row[f"done_{index}"]
    return f"{name} at {_t(at)}" if ok else f"no {name} between the anchor and {_t(now)}"


def _delivered_detail(rule: Rule, ok: bool, row: dict[str, Any], now: datetime) -> str:
    scope = _scope(rule, row)
    if ok:
        return _not_delivered(rule, row, scope)
    reason = f", {row['delivered_reason']}" if row["delivered_reason"] else ""
    status = f"{row['delivered_status']}{reason}"
    at = row["delivered_created_at"]
    to = f", to {row['delivered_user_id']}" if rule.once_per == "account" else ""
    delivered = f"already delivered{scope} at {_t(at)}{to} (status {status})"
    if rule.repeat_after is None:
        return delivered
    return f"{delivered}; may repeat from {_t(at + rule.repeat_after)}"


def _not_delivered(rule: Rule, row: dict[str, Any], scope: str) -> str:
    fired = row["delivered_count"]
    if rule.repeat_after is None or not fired:
        return f"not delivered{scope} yet"
    every = format_duration(rule.repeat_after)
    last = _t(row["delivered_created_at"])
    return f"last delivered{scope} at {last}, over {every} ago: this is firing {row['occurrence']}"


def _scope(rule: Rule, row: dict[str, Any]) -> str:
    if rule.once_per == "account":
        return f" to {_account(row)}"
    if rule.once_per == "occurrence":
        return f" for occurrence {row['occurrence']}"
    return ""


# ---- v2 event conditions (pure) -----------------------------------------------------------


def item_detail(
    rule: Rule, kind: str, index: int, ok: bool, row: dict[str, Any], now: datetime
) -> str:
    """`not_done[i]`, `done[i]`, `account_not_done[i]`, `account_done[i]`: what the window
    holds (how many, the first one and whose), against what the item asks."""
    item: EventItem = getattr(rule.when, kind)[index]
    label = f"{kind}_{index}"
    count, at, by = row[f"{label}_count"], row[f"{label}_at"], row[f"{label}_by"]
    shared = kind.startswith("account_")
    what = item.event + (f" with {_conditions(item.where)}" if item.where else "")
    scope = f" by {_members(row)}" if shared else ""
    window = _window(item, now)
    if item.count is not None:
        return f"{count} {what}{scope} {window}; wants {_counts(item)}"
    if not count:
        return f"no {what}{scope} {window}"
    whose = f" by {by}" if shared else ""
    return f"{what} at {_t(at)}{whose} ({count} {window})"


def _members(row: dict[str, Any]) -> str:
    if row["account_id"]:
        return f"members of account {row['account_id']}"
    return "the user (no account)"


def _window(item: EventItem, now: datetime) -> str:
    if item.within is None:
        return f"between the anchor and {_t(now)}"
    return f"in the last {format_duration(item.within)} (since {_t(now - item.within)})"


def _counts(item: EventItem) -> str:
    assert item.count is not None
    given = item.count.model_dump(exclude_none=True)
    return ", ".join(f"{op} {bound}" for op, bound in given.items())


def _conditions(where: dict[str, Ops]) -> str:
    return ", ".join(f"{key} {wants(ops)}" for key, ops in where.items())


# ---- once it fires (pure) --------------------------------------------------------------


def delivery_checks(rule: Rule, planned: Planned, at: datetime) -> tuple[Check, ...]:
    """Holdout, email and guide: what the tick at `at` would record for this firing."""
    checks = [_holdout_check(rule, planned)]
    if planned.variant is not None:
        checks.append(_variant_check(rule, planned))
    if rule.send.email and not planned.holdout:
        checks.append(_email_check(planned, at))
    if rule.send.guide and not planned.holdout:
        until = _t(planned.guide_expires_at)
        checks.append(Check("guide", True, f"{planned.guide_id} until {until}"))
    return tuple(checks)


def _holdout_check(rule: Rule, planned: Planned) -> Check:
    share = f"{rule.holdout:g}% control group"
    if planned.holdout:
        return Check("holdout", False, f"in the {share}: recorded as held_out, nothing sent")
    return Check("holdout", True, f"not in the {share}" if rule.holdout else "no holdout")


def _variant_check(rule: Rule, planned: Planned) -> Check:
    variants = rule.send.variants
    assert variants is not None
    assert planned.variant is not None
    split = ", ".join(f"{name} {share:g}%" for name, share in variants.shares())
    return Check("variant", True, f"{planned.variant} (split {split}; by rule and subject)")


def _email_check(planned: Planned, at: datetime) -> Check:
    if planned.status is Status.SKIPPED:
        return Check("email", False, f"skipped: {planned.reason}")
    moved = " (after quiet hours)" if planned.send_at != at else ""
    sending = f"{planned.email_template} to {planned.email_to}"
    return Check("email", True, f"{sending} at {_t(planned.send_at)}{moved}")


def verdict(explanation: Explanation) -> str:
    at = _t(explanation.at)
    if not explanation.rule.enabled and explanation.matches:
        return f"matches at {at}, but the rule is disabled: the daemon does not evaluate it"
    if not explanation.matches:
        failed = next(c for c in explanation.checks if c.ok is False)
        return f"does not fire at {at}: {failed.name}: {failed.detail}"
    planned = explanation.planned
    if planned is None:
        return f"fires at {at}"
    if planned.holdout:
        return f"fires at {at}, held out: recorded, nothing sent"
    return f"fires at {at}: {_summary(planned)}"


def _summary(planned: Planned) -> str:
    parts: list[str] = []
    if planned.status is Status.SKIPPED:
        parts.append(f"email skipped ({planned.reason})")
    elif planned.sends_email:
        parts.append(f"email {planned.email_template} at {_t(planned.send_at)}")
    if planned.variant is not None:
        parts.append(f"variant {planned.variant}")
    if planned.guide_id:
        parts.append(f"guide {planned.guide_id}")
    return ", ".join(parts)


def _t(value: datetime | None) -> str:
    return isoformat(value) or "-"
