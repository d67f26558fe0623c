"""The rule language (v2, a superset of v1): pydantic models of the YAML, and a loader whose
errors name `file:line` and the rule id. No SQL, no Jinja, no I/O beyond reading the rule files.

v2 adds recency windows and counts to `done`/`not_done`, the account's events
(`account_done`/`account_not_done`), the last occurrence as anchor, the account's creation as
anchor, account traits in the audience, and the firing scope (`once_per`, `repeat_after`).
Every v1 file parses to a rule that means what it meant."""

from __future__ import annotations

import hashlib
import json
import math
import operator
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    model_validator,
)

from engine.durations import parse_duration
from engine.errors import Problem, RuleError
from engine.model import ACCOUNT_CREATED, ACTIVATED, SIGNED_UP
from engine.rules.quiet_hours import QuietHours
from engine.rules.webhooks import Webhook, WebhookPolicy, resolve
from engine.rules.yamlsource import Located, load_yaml, read_source

Scalar = StrictStr | StrictInt | StrictFloat | StrictBool
Number = StrictInt | StrictFloat
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
RULE_ID_PATTERN = r"^[a-z0-9_-]+$"
# Keys of traits and event properties: top-level JSON keys, spelt so they need no quoting.
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
Key = Annotated[str, Field(pattern=KEY_PATTERN)]
OPERATORS = ("in", "not_in", "eq", "ne", "gt", "gte", "lt", "lte", "exists")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


def _as_ops(value: Any) -> Any:
    """`x` means `{eq: x}` and `[x, y]` means `{in: [x, y]}`."""
    if isinstance(value, list | tuple):
        return {"in": value}
    if isinstance(value, dict):
        return value
    return {"eq": value}


class Ops(_Frozen):
    """A condition on one value. All operators given are ANDed."""

    in_: tuple[Scalar, ...] | None = Field(default=None, alias="in")
    not_in: tuple[Scalar, ...] | None = None
    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: Number | None = None
    gte: Number | None = None
    lt: Number | None = None
    lte: Number | None = None
    exists: StrictBool | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError(f"a condition needs an operator: one of {', '.join(OPERATORS)}")
        return self


Condition = Annotated[Ops, BeforeValidator(_as_ops)]


def _percent(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        number = text[:-1] if text.endswith("%") else text
        try:
            value = float(number)
        except ValueError:
            raise ValueError(f"not a percentage: {value!r} (write e.g. '10%')") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a percentage: {value!r} (write e.g. '10%')")
    if not 0 <= value <= 100:
        raise ValueError(f"percentage out of range: {value:g}% (must be between 0% and 100%)")
    return float(value)


Percent = Annotated[float, BeforeValidator(_percent)]


class Audience(_Frozen):
    persona: Condition | None = None
    signup_source: Condition | None = None
    traits: dict[Key, Condition] = Field(default_factory=dict)
    # The user's account's traits (from group calls); a user without an account, or whose
    # account sent no group call yet, has none.
    account: dict[Key, Condition] = Field(default_factory=dict)


COUNT_OPERATORS = ("eq", "gte", "gt", "lte", "lt")
Count = Annotated[StrictInt, Field(ge=0)]


class CountOps(_Frozen):
    """How many matching events: all operators given are ANDed."""

    eq: Count | None = None
    gte: Count | None = None
    gt: Count | None = None
    lte: Count | None = None
    lt: Count | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError(f"count needs an operator: one of {', '.join(COUNT_OPERATORS)}")
        return self

    def holds(self, count: int) -> bool:
        return all(compare(count, bound) for bound, compare in self.bounds())

    def bounds(self) -> list[tuple[int, Any]]:
        pairs = [
            (self.eq, operator.eq),
            (self.gte, operator.ge),
            (self.gt, operator.gt),
            (self.lte, operator.le),
            (self.lt, operator.lt),
        ]
        return [(bound, compare) for bound, compare in pairs if bound is not None]


def _as_event_item(value: Any) -> Any:
    """`name` means `{event: name}`."""
    return {"event": value} if isinstance(value, str) else value


class EventItem(_Frozen):
    """One `done`/`not_done` item: events named `event` (whose properties match `where`) in
    the window `[anchor, now]`, or `[now - within, now]` when `within` is given."""

    event: Annotated[StrictStr, Field(min_length=1)]
    where: dict[Key, Condition] = Field(default_factory=dict)
    within: Duration | None = None
    count: CountOps | None = None  # done only: how many; without it, at least one

    @model_validator(mode="after")
    def _positive(self) -> Self:
        if self.within is not None and self.within <= timedelta(0):
            raise ValueError("within must be positive")
        return self

    @property
    def plain(self) -> bool:
        """A v1 item: a bare event name over [anchor, now]."""
        return not self.where and self.within is None and self.count is None


Item = Annotated[EventItem, BeforeValidator(_as_event_item)]


class Since(_Frozen):
    """An event anchor in full: which occurrence anchors the rule, and (for
    `once_per: occurrence`) which property names an occurrence."""

    event: Annotated[StrictStr, Field(min_length=1)]
    occurrence: Literal["first", "last"] = "first"
    where: dict[Key, Condition] = Field(default_factory=dict)
    key: Key | None = None

    @model_validator(mode="after")
    def _an_event(self) -> Self:
        if self.event in (SIGNED_UP, ACCOUNT_CREATED):
            raise ValueError(f"since.event names an event; write `since: {self.event}` instead")
        return self


def _since_form(value: Any) -> str:
    return "Since" if isinstance(value, dict) else "str"


# A mapping is the full form and a string a name: one form's errors, never the other's.
SinceField = Annotated[
    Annotated[StrictStr, Tag("str")] | Annotated[Since, Tag("Since")],
    Discriminator(_since_form),
]


class When(_Frozen):
    since: SinceField = SIGNED_UP
    where: dict[Key, Condition] = Field(default_factory=dict)
    after: Duration = timedelta(0)
    not_done: tuple[Item, ...] = ()
    done: tuple[Item, ...] = ()
    account_not_done: tuple[Item, ...] = ()
    account_done: tuple[Item, ...] = ()
    expires: Duration | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if not self.since:
            raise ValueError("since must be 'signed_up', 'account_created' or an event name")
        if self.where and self.anchor_event is None:
            raise ValueError("where filters the anchor event's properties; it needs since: <event>")
        if self.where and isinstance(self.since, Since):
            raise ValueError("give the anchor's where in since.where, not beside it")
        negated = (("not_done", self.not_done), ("account_not_done", self.account_not_done))
        for name, items in negated:
            if any(item.count is not None for item in items):
                raise ValueError(
                    f"count belongs in done or account_done, not {name} "
                    "(for 'fewer than n', write done: [{event: x, count: {lt: n}}])"
                )
        if any(i.plain and i.event == self.anchor_event for i in self.not_done):
            raise ValueError(
                f"not_done contains the anchor event {self.anchor_event!r}, "
                "so the rule could never fire"
            )
        if self.after < timedelta(0):
            raise ValueError("after must not be negative")
        return self

    @property
    def anchor_name(self) -> str:
        """`signed_up`, `account_created` or the anchor event's name."""
        return self.since.event if isinstance(self.since, Since) else self.since

    @property
    def anchor_event(self) -> str | None:
        """The anchor event's name, or None when the rule is anchored on a signup."""
        name = self.anchor_name
        return None if name in (SIGNED_UP, ACCOUNT_CREATED) else name

    @property
    def anchored_on_signup(self) -> bool:
        return self.anchor_name == SIGNED_UP

    @property
    def anchored_on_account(self) -> bool:
        return self.anchor_name == ACCOUNT_CREATED

    @property
    def anchor_where(self) -> dict[str, Ops]:
        return self.since.where if isinstance(self.since, Since) else self.where

    @property
    def occurrence(self) -> Literal["first", "last"]:
        return self.since.occurrence if isinstance(self.since, Since) else "first"

    @property
    def occurrence_key(self) -> str | None:
        return self.since.key if isinstance(self.since, Since) else None

    @property
    def uses_account(self) -> bool:
        return bool(self.account_done or self.account_not_done) or self.anchored_on_account


VARIANT_PATTERN = RULE_ID_PATTERN
VariantName = Annotated[str, Field(pattern=VARIANT_PATTERN, max_length=64)]


class Variants(_Frozen):
    """Versions of one message (`{variants: {a: tpl_a, b: tpl_b}, split: {a: 50, b: 50}}`):
    each subject gets one, by a hash of (rule, subject) (engine/decide/variants.py). Without
    `split`, the variants share the subjects evenly."""

    variants: dict[VariantName, Annotated[StrictStr, Field(min_length=1)]]
    split: dict[VariantName, Percent] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if len(self.variants) < 2:
            raise ValueError(
                "variants needs at least two variants (for one message, name it directly)"
            )
        if self.split is None:
            return self
        missing = sorted(set(self.variants) - set(self.split))
        unknown = sorted(set(self.split) - set(self.variants))
        if missing or unknown:
            said = [f"no share for {', '.join(missing)}"] if missing else []
            said += [f"{', '.join(unknown)} not among the variants"] if unknown else []
            raise ValueError(f"split must name exactly the variants: {'; '.join(said)}")
        total = math.fsum(self.split.values())
        if not math.isclose(total, 100.0, abs_tol=1e-9):
            raise ValueError(f"split must sum to 100%, not {total:g}%")
        if not any(self.split.values()):
            raise ValueError("split gives every variant 0%")
        return self

    def shares(self) -> tuple[tuple[str, float], ...]:
        """(variant, percent) by name: the order is the names', not the file's, so that
        reordering the YAML moves nobody to another variant."""
        names = sorted(self.variants)
        if self.split is None:
            return tuple((name, 100.0 / len(names)) for name in names)
        return tuple((name, self.split[name]) for name in names)


def _message_form(value: Any) -> str:
    return "Variants" if isinstance(value, dict) else "str"


# A mapping is a set of variants and a string one message: one form's errors, never both.
EmailField = Annotated[
    Annotated[StrictStr, Tag("str")] | Annotated[Variants, Tag("Variants")],
    Discriminator(_message_form),
]
GuideId = Annotated[StrictStr, Field(pattern=RULE_ID_PATTERN)]
GuideField = Annotated[
    Annotated[GuideId, Tag("str")] | Annotated[Variants, Tag("Variants")],
    Discriminator(_message_form),
]


class Send(_Frozen):
    email: EmailField | None = None
    guide: GuideField | None = None
    guide_ttl: Duration | None = None
    guide_params: dict[Key, Any] = Field(default_factory=dict)  # passed to the frontend as is
    webhook: Webhook | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.email and not self.guide and not self.webhook:
            raise ValueError(
                "a rule must send something: set send.email, send.guide and/or send.webhook"
            )
        if self.email and self.webhook:
            # A ledger row is one message with one status: the email's or the webhook's.
            raise ValueError(
                "send.webhook and send.email cannot share a rule (each firing is one "
                "message in the ledger): write a second rule with the same audience and when"
            )
        if (self.guide_ttl is not None or self.guide_params) and not self.guide:
            raise ValueError("guide_ttl and guide_params need send.guide")
        if isinstance(self.guide, Variants):
            for name, guide in self.guide.variants.items():
                if not re.match(RULE_ID_PATTERN, guide):
                    raise ValueError(
                        f"send.guide.variants.{name}: {guide!r} must match [a-z0-9_-]+"
                    )
        mails, guides = self.email_variants, self.guide_variants
        if mails is not None and guides is not None and mails.shares() != guides.shares():
            # One hash places a subject in one variant: of the email and the guide alike.
            raise ValueError(
                "send.email and send.guide both have variants: they must name the same "
                "variants with the same split"
            )
        return self

    @property
    def email_variants(self) -> Variants | None:
        return self.email if isinstance(self.email, Variants) else None

    @property
    def guide_variants(self) -> Variants | None:
        return self.guide if isinstance(self.guide, Variants) else None

    @property
    def variants(self) -> Variants | None:
        """The rule's variants (its email's, else its guide's), or None."""
        return self.email_variants or self.guide_variants

    def email_for(self, variant: str | None) -> str | None:
        """The email template a subject in `variant` gets (None: the rule sends no email)."""
        if isinstance(self.email, Variants):
            return self.email.variants[variant] if variant is not None else None
        return self.email

    def guide_for(self, variant: str | None) -> str | None:
        if isinstance(self.guide, Variants):
            return self.guide.variants[variant] if variant is not None else None
        return self.guide

    @property
    def email_templates(self) -> tuple[str, ...]:
        """Every email template the rule may send, by variant name."""
        if isinstance(self.email, Variants):
            return tuple(self.email.variants[name] for name, _ in self.email.shares())
        return (self.email,) if self.email else ()


class Goal(_Frozen):
    event: StrictStr
    within: Duration = timedelta(days=7)
    where: dict[Key, Condition] = Field(default_factory=dict)


class Rule(_Frozen):
    id: Annotated[StrictStr, Field(pattern=RULE_ID_PATTERN)]
    description: StrictStr = ""
    enabled: StrictBool = True
    priority: StrictInt = 0
    audience: Audience = Field(default_factory=Audience)
    when: When = Field(default_factory=When)
    send: Send
    goal: Goal | None = None
    holdout: Percent = 0.0
    # Delivery overrides: `quiet_hours: false` sends at any hour (e.g. a verification
    # reminder), a window replaces the config's; `frequency_cap: false` exempts the rule.
    quiet_hours: QuietHours | Literal[False] | None = None
    frequency_cap: StrictBool = True
    # Who a firing is counted against: each user once (v1), each occurrence of the anchor
    # event once, or each account once (one member, chosen deterministically).
    once_per: Literal["user", "occurrence", "account"] = "user"
    repeat_after: Duration | None = None  # user/account: may fire again this long after

    @model_validator(mode="after")
    def _scope(self) -> Self:
        when = self.when
        if self.once_per == "occurrence":
            if when.anchor_event is None:
                raise ValueError(
                    "once_per: occurrence needs an event anchor (since: <event>); "
                    f"{when.anchor_name!r} happens once"
                )
            if self.repeat_after is not None:
                raise ValueError(
                    "repeat_after does not apply to once_per: occurrence "
                    "(each occurrence fires once; drop repeat_after or use once_per: user)"
                )
        elif when.occurrence_key is not None:
            raise ValueError("since.key names occurrences: it needs once_per: occurrence")
        if self.repeat_after is not None and self.repeat_after <= timedelta(0):
            raise ValueError("repeat_after must be positive")
        return self

    @property
    def uses_account(self) -> bool:
        """Whether the rule reads the user's account (its traits, members or scope)."""
        return bool(self.audience.account) or self.when.uses_account or self.once_per == "account"

    @property
    def fingerprint(self) -> str:
        """Names this definition: incremental evaluation starts over when it changes."""
        # warnings off: the `since` union serializes right, though pydantic doubts its tag.
        document = self.model_dump(mode="json", warnings=False)
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()

    @property
    def expires(self) -> timedelta:
        # The loader always resolves `when.expires` from the config default.
        assert self.when.expires is not None, "rules must be loaded through load_rules"
        return self.when.expires

    @property
    def guide_ttl(self) -> timedelta | None:
        return self.send.guide_ttl


@dataclass(frozen=True)
class RuleSet:
    """Validated rules in file order, and where each was written."""

    rules: tuple[Rule, ...]
    sources: dict[str, tuple[str, int]] = field(default_factory=dict)

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    def get(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def where(self, rule_id: str) -> str:
        file, line = self.sources.get(rule_id, ("?", 0))
        return f"{file}:{line}"


def rule_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_rules(
    directory: Path,
    *,
    default_expires: timedelta,
    templates: Collection[str] | None = None,
    activation_event: str | None = None,
    webhooks: WebhookPolicy | None = None,
) -> RuleSet:
    """Load every rule file in `directory`; raise RuleError listing every problem found.

    `templates` is the set of email template names available; None skips that check.
    `activation_event` is what `since: activated` means (the config's
    `reports.activation_event`); None leaves `activated` unknown. `webhooks` is what the
    config allows webhooks (None: https or loopback, no named endpoints).
    """
    if not directory.is_dir():
        raise RuleError([Problem("rules directory not found", str(directory))])
    problems: list[Problem] = []
    rules: list[Rule] = []
    sources: dict[str, tuple[str, int]] = {}
    for path in rule_files(directory):
        text = read_source(path)
        if isinstance(text, Problem):
            problems.append(text)
            continue
        file_rules, file_problems = parse_rule_file(
            text,
            str(path),
            templates=templates,
            activation_event=activation_event,
            webhooks=webhooks,
        )
        problems.extend(file_problems)
        for rule, line in file_rules:
            if rule.id in sources:
                first = "{}:{}".format(*sources[rule.id])
                problems.append(
                    Problem(
                        f"duplicate rule id (first defined at {first})", str(path), line, rule.id
                    )
                )
                continue
            sources[rule.id] = (str(path), line)
            rules.append(_with_default_expiry(rule, default_expires))
    if problems:
        raise RuleError(problems)
    return RuleSet(tuple(rules), sources)


def _with_default_expiry(rule: Rule, default: timedelta) -> Rule:
    if rule.when.expires is not None:
        return rule
    return rule.model_copy(update={"when": rule.when.model_copy(update={"expires": default})})


def parse_rule_file(
    text: str,
    file: str,
    *,
    templates: Collection[str] | None = None,
    activation_event: str | None = None,
    webhooks: WebhookPolicy | None = None,
) -> tuple[list[tuple[Rule, int]], list[Problem]]:
    """Parse one file's text into (rule, line) pairs and the problems found.

    `templates` is the set of email template names available; None skips that check.
    `activation_event` is what `since: activated` stands for (see `load_rules`)."""
    located, problems = load_yaml(text, file)
    if located is None:
        return [], problems
    data = located.data
    if data is None:
        return [], problems
    if not isinstance(data, dict) or "rules" not in data:
        return [], [*problems, Problem("a rule file needs a top-level 'rules:' list", file, 1)]
    for key in data:
        if key != "rules":
            problems.append(
                Problem(f"unknown top-level key {key!r} (only 'rules')", file, located.line([key]))
            )
    items = data["rules"]
    if not isinstance(items, list):
        return [], [*problems, Problem("'rules' must be a list", file, located.line(["rules"]))]
    parsed: list[tuple[Rule, int]] = []
    for index, item in enumerate(items):
        base = ("rules", index)
        line = located.line(base) or 1
        if not isinstance(item, dict):
            problems.append(Problem("each rule must be a mapping with an id", file, line))
            continue
        rule_id = item.get("id") if isinstance(item.get("id"), str) else None
        item, unknown = _activated(item, activation_event)
        if unknown:
            where = located.line((*base, "when", "since"))
            problems.append(Problem(unknown, file, where, rule_id))
            continue
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            problems.extend(_located_problems(exc, located, base, rule_id))
            continue
        for path, missing in _missing_templates(rule, templates):
            where = located.line((*base, "send", "email", *path))
            problems.append(Problem(missing, file, where, rule.id))
        if rule.send.webhook is not None:
            resolved, found = _webhook(rule, webhooks or WebhookPolicy())
            where = located.line((*base, "send", "webhook"))
            problems.extend(Problem(message, file, where, rule.id) for message in found)
            if resolved is None:
                continue
            rule = resolved
        parsed.append((rule, line))
    return parsed, problems


def _activated(item: dict[str, Any], event: str | None) -> tuple[dict[str, Any], str | None]:
    """`since: activated` is the user's first activation event: the very event the reports
    call activation, so that the rule and the activation report cannot drift apart."""
    when = item.get("when")
    if not isinstance(when, dict) or when.get("since") != ACTIVATED:
        return item, None
    if event is None:
        return item, "since: activated needs the activation event (reports.activation_event)"
    return {**item, "when": {**when, "since": {"event": event, "occurrence": "first"}}}, None


def _webhook(rule: Rule, policy: WebhookPolicy) -> tuple[Rule | None, list[str]]:
    """The rule with its webhook's URL resolved (a named endpoint's), or None and why not."""
    webhook = rule.send.webhook
    assert webhook is not None
    url, problems = resolve(webhook, policy, enabled=rule.enabled)
    if url is None or problems:
        return None, problems
    send = rule.send.model_copy(update={"webhook": webhook.model_copy(update={"url": url})})
    return rule.model_copy(update={"send": send}), []


def _missing_templates(
    rule: Rule, templates: Collection[str] | None
) -> list[tuple[tuple[str, ...], str]]:
    """(where in the rule, message) for each email template of the rule that does not exist."""
    if templates is None:
        return []
    known = ", ".join(sorted(templates)) or "none"
    email = rule.send.email
    named = (
        [(("variants", name), tpl) for name, tpl in email.variants.items()]
        if isinstance(email, Variants)
        else [((), email)]
        if email
        else []
    )
    return [
        (
            path,
            f"{'.'.join(('send.email', *path))}: template {tpl!r} does not exist (known: {known})",
        )
        for path, tpl in named
        if tpl not in templates
    ]


def _located_problems(
    exc: ValidationError, located: Located, base: tuple[object, ...], rule_id: str | None
) -> list[Problem]:
    problems: list[Problem] = []
    seen: set[tuple[object, ...]] = set()
    for error in exc.errors():
        loc = _clean_loc(error["loc"])
        if loc in seen:
            continue  # a union reports one error per member; one message is enough
        seen.add(loc)
        message = _message(error, loc)
        problems.append(Problem(message, located.file, located.line((*base, *loc)), rule_id))
    return problems


_KEY_MARK = "[key]"  # pydantic's last `loc` part when a dict key fails validation
_UNION_TAG = re.compile(
    r"^(str|int|float|bool|Since|Variants|function-before\[.*\]|function-after\[.*\])$"
)


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[object, ...]:
    return tuple(part for part in loc if not (isinstance(part, str) and _UNION_TAG.match(part)))


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "a boolean",
}


def _message(error: Any, loc: tuple[object, ...]) -> str:
    kind = error["type"]
    field = ".".join(str(p) for p in loc)
    if kind == "extra_forbidden":
        parent = ".".join(str(p) for p in loc[:-1])
        return f"unknown key {loc[-1]!r}" + (f" in {parent}" if parent else "")
    if kind == "missing":
        return f"missing required key {field!r}"
    text = str(error["msg"])
    text = text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in _TYPE_NAMES:
        wanted = "a number" if loc and loc[-1] in ("gt", "gte", "lt", "lte") else _TYPE_NAMES[kind]
        text = f"expected {wanted}, got {error['input']!r}"
        if isinstance(error["input"], bool) and kind.startswith("string"):
            text += " (YAML reads yes/no/on/off/true/false as booleans: quote the value)"
    if kind == "string_pattern_mismatch":
        # The pattern the field really has (ids and trait keys differ), without its anchors.
        pattern = str(error.get("ctx", {}).get("pattern", "")).removeprefix("^").removesuffix("$")
        text = f"{error['input']!r} must match {pattern}"
        if loc and loc[-1] == _KEY_MARK:  # a mapping's key, not its value, is wrong
            field = ".".join(str(p) for p in loc[:-1])
            text = f"key {text}"
    return f"{field}: {text}" if field else text
