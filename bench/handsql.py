"""The default rule pack written by hand as plain SQL: the baseline the engine is held to.

Each rule is one hand-written SELECT of the users for whom it fires (the same windows
`[now - after - expires, now - after]`, NOT EXISTS for not_done, EXISTS for done, the first
matching event as the anchor of event-anchored rules, the ledger's NOT EXISTS), wrapped in
`INSERT INTO deliveries ... ON CONFLICT (rule_id, subject, occurrence) DO NOTHING` plus the
guide flags in the same transaction. Each SELECT also names the ledger key it takes (subject,
occurrence): the user and '' for v1 rules; the v2 rules write theirs as the README defines them
(`#2`, `#3` for repeats, `account:<id>` for a once-per-account rule), by what a person writing
SQL for that one rule would use: the win-back's "last run" is a NOT EXISTS of a later run, and
the trial-account rule's chosen member is the account's first signup (every member matches
alike: its audience and conditions are the account's). Where the two dialects read the same
SQL there is one string; they differ only on JSON (`json_extract` / `->>`), on date arithmetic
and on how the guide flags find their rows (SQLite has no data-modifying CTE).

Status, holdout and message id are constants: plain SQL cannot compute the engine's SHA-256
holdout bucket, so every row is written as not held out. The rule constants below are
hand-copied from rules/*.yaml; `check_against` fails the run when the YAML says otherwise."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, TextClause, bindparam, text

from bench.errors import BenchError
from engine.rules.language import EventItem, Ops, Rule, RuleSet
from engine.sql.schema import UTCDateTime

H = timedelta(hours=1)
D = timedelta(days=1)


@dataclass(frozen=True)
class HandRule:
    id: str
    after: timedelta
    expires: timedelta
    email: str | None
    guide: str | None
    guide_ttl: timedelta | None
    # dialect -> SELECT user_id, email, anchor_at, anchor_event_id, subject, occurrence
    select: dict[str, str]
    # What else of the YAML the SQL was written from, checked by `check_against`.
    conditions: tuple[str, ...] = ()
    anchor: str = "signed_up"
    occurrence: str = "first"
    once_per: str = "user"
    repeat_after: timedelta | None = None
    # The recency windows: `:name` binds `now - value` (each a `within` of the rule's items);
    # `:repeat_since` binds `now - repeat_after`.
    before_now: tuple[tuple[str, timedelta], ...] = ()


def _both(sql: str) -> dict[str, str]:
    return {"sqlite": sql, "postgresql": sql}


WELCOME_SALES_MARKETING = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND u.persona IN ('sales', 'marketing')
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'welcome-sales-marketing' AND d.user_id = u.id)
"""

WELCOME_INVITED_DATA_ENGINEER = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND u.persona = 'data_engineer' AND u.signup_source = 'invited'
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'welcome-invited-data-engineer' AND d.user_id = u.id)
"""

INVITED_DATA_ENGINEER_COMMUNITY = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND u.persona = 'data_engineer' AND u.signup_source = 'invited'
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'invited-data-engineer-community-24h' AND d.user_id = u.id)
"""

WELCOME_ORGANIC_DATA_ENGINEER = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND u.persona = 'data_engineer' AND u.signup_source = 'organic'
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'welcome-organic-data-engineer' AND d.user_id = u.id)
"""

ORGANIC_DATA_ENGINEER_NO_CONNECTION = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND u.persona = 'data_engineer' AND u.signup_source = 'organic'
  AND NOT EXISTS (SELECT 1 FROM events AS e
                  WHERE e.user_id = u.id AND e.name IN ('connection_created', 'workflow_saved')
                    AND e.occurred_at BETWEEN u.signed_up_at AND :now)
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'organic-data-engineer-no-connection-24h' AND d.user_id = u.id)
"""

WELCOME_EXPLORER = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND u.persona IN ('analyst', 'other')
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'welcome-explorer' AND d.user_id = u.id)
"""

# How each database reads the `direction` property of an event alias.
DIRECTION = {
    "sqlite": "json_extract({alias}.properties, '$.direction')",
    "postgresql": "{alias}.properties ->> 'direction'",
}


def abandoned_workflow(direction: str, dialect: str) -> str:
    """The abandoned-workflow rule for one direction, written out for one database."""
    anchor = DIRECTION[dialect].format(alias="a")
    prior = DIRECTION[dialect].format(alias="p")
    return f"""
SELECT u.id AS user_id, u.email, a.occurred_at AS anchor_at, a.id AS anchor_event_id,
       u.id AS subject, '' AS occurrence
FROM events AS a JOIN users AS u ON u.id = a.user_id
WHERE a.name = 'workflow_started' AND a.occurred_at BETWEEN :earliest AND :latest
  AND {anchor} = '{direction}'
  AND NOT EXISTS (SELECT 1 FROM events AS p
                  WHERE p.user_id = a.user_id AND p.name = 'workflow_started'
                    AND {prior} = '{direction}'
                    AND (p.occurred_at < a.occurred_at
                         OR (p.occurred_at = a.occurred_at AND p.id < a.id)))
  AND u.persona = 'data_engineer'
  AND NOT EXISTS (SELECT 1 FROM events AS e
                  WHERE e.user_id = u.id AND e.name = 'workflow_saved'
                    AND e.occurred_at BETWEEN a.occurred_at AND :now)
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'abandoned-{direction}-workflow' AND d.user_id = u.id)
"""


VERIFY_REMINDER = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND NOT EXISTS (SELECT 1 FROM events AS e
                  WHERE e.user_id = u.id AND e.name IN ('email_verified', 'connection_created')
                    AND e.occurred_at BETWEEN u.signed_up_at AND :now)
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'verify-reminder-24h' AND d.user_id = u.id)
"""

VERIFY_REMINDER_CONNECTED = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND EXISTS (SELECT 1 FROM events AS e
              WHERE e.user_id = u.id AND e.name = 'connection_created'
                AND e.occurred_at BETWEEN u.signed_up_at AND :now)
  AND NOT EXISTS (SELECT 1 FROM events AS e
                  WHERE e.user_id = u.id AND e.name = 'email_verified'
                    AND e.occurred_at BETWEEN u.signed_up_at AND :now)
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'verify-reminder-connected-24h' AND d.user_id = u.id)
"""

VERIFIED_AND_CONNECTED = """
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id, u.id AS subject, '' AS occurrence
FROM users AS u
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND u.persona = 'data_engineer'
  AND EXISTS (SELECT 1 FROM events AS e
              WHERE e.user_id = u.id AND e.name = 'email_verified'
                AND e.occurred_at BETWEEN u.signed_up_at AND :now)
  AND EXISTS (SELECT 1 FROM events AS e
              WHERE e.user_id = u.id AND e.name = 'connection_created'
                AND e.occurred_at BETWEEN u.signed_up_at AND :now)
  AND NOT EXISTS (SELECT 1 FROM events AS e
                  WHERE e.user_id = u.id AND e.name = 'workflow_saved'
                    AND e.occurred_at BETWEEN u.signed_up_at AND :now)
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'verified-and-connected-next-step' AND d.user_id = u.id)
"""

# ---- v2: the retention pack -----------------------------------------------------------

# The last run (none later up to now) 14-21 days ago, 3 runs in the 74 days before now; each
# firing takes the next occurrence ('', '#2', ...), at most one per 30 days.
WIN_BACK = """
SELECT u.id AS user_id, u.email, a.occurred_at AS anchor_at, a.id AS anchor_event_id,
       u.id AS subject,
       (SELECT CASE COUNT(*) WHEN 0 THEN '' ELSE '#' || CAST(COUNT(*) + 1 AS TEXT) END
        FROM deliveries AS f
        WHERE f.rule_id = 'win-back-lapsed-data-engineer' AND f.subject = u.id) AS occurrence
FROM events AS a JOIN users AS u ON u.id = a.user_id
WHERE a.name = 'workflow_run' AND a.occurred_at BETWEEN :earliest AND :latest
  AND NOT EXISTS (SELECT 1 FROM events AS l
                  WHERE l.user_id = a.user_id AND l.name = 'workflow_run'
                    AND l.occurred_at <= :now
                    AND (l.occurred_at > a.occurred_at
                         OR (l.occurred_at = a.occurred_at AND l.id > a.id)))
  AND u.persona = 'data_engineer'
  AND (SELECT COUNT(*) FROM events AS r
       WHERE r.user_id = u.id AND r.name = 'workflow_run'
         AND r.occurred_at BETWEEN :runs_since AND :now) >= 3
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'win-back-lapsed-data-engineer' AND d.subject = u.id
                    AND d.created_at > :repeat_since)
"""

# How each database reads an account's `plan` trait.
PLAN = {
    "sqlite": "json_extract(acc.traits, '$.plan')",
    "postgresql": "acc.traits ->> 'plan'",
}


def trial_account(dialect: str) -> str:
    """Trial accounts first signed up 3-5 days ago where no member has run a workflow since:
    the account's first member (nobody signed up before them, ties by id), once per account.
    A user without an account has no account traits, so is never a trial account."""
    return f"""
SELECT u.id AS user_id, u.email, u.signed_up_at AS anchor_at,
       CAST(NULL AS BIGINT) AS anchor_event_id,
       'account:' || u.account_id AS subject, '' AS occurrence
FROM users AS u JOIN accounts AS acc ON acc.id = u.account_id
WHERE u.signed_up_at BETWEEN :earliest AND :latest
  AND {PLAN[dialect]} = 'trial'
  AND NOT EXISTS (SELECT 1 FROM users AS m
                  WHERE m.account_id = u.account_id
                    AND (m.signed_up_at < u.signed_up_at
                         OR (m.signed_up_at = u.signed_up_at AND m.id < u.id)))
  AND NOT EXISTS (SELECT 1 FROM users AS m JOIN events AS e ON e.user_id = m.id
                  WHERE m.account_id = u.account_id AND e.name = 'workflow_run'
                    AND e.occurred_at BETWEEN u.signed_up_at AND :now)
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'trial-account-no-workflow-day3'
                    AND d.subject = 'account:' || u.account_id AND d.occurrence = '')
"""


# The first run (the activation event) 30-37 days ago.
MONTH_AFTER_ACTIVATION = """
SELECT u.id AS user_id, u.email, a.occurred_at AS anchor_at, a.id AS anchor_event_id,
       u.id AS subject, '' AS occurrence
FROM events AS a JOIN users AS u ON u.id = a.user_id
WHERE a.name = 'workflow_run' AND a.occurred_at BETWEEN :earliest AND :latest
  AND NOT EXISTS (SELECT 1 FROM events AS p
                  WHERE p.user_id = a.user_id AND p.name = 'workflow_run'
                    AND (p.occurred_at < a.occurred_at
                         OR (p.occurred_at = a.occurred_at AND p.id < a.id)))
  AND u.persona = 'data_engineer'
  AND NOT EXISTS (SELECT 1 FROM deliveries AS d
                  WHERE d.rule_id = 'data-engineer-month-after-activation' AND d.subject = u.id
                    AND d.occurrence = '')
"""

HAND_RULES: tuple[HandRule, ...] = (
    HandRule(
        "welcome-sales-marketing",
        after=0 * H,
        expires=24 * H,
        email="welcome_invite_coworker",
        guide="invite_coworker_tour",
        guide_ttl=14 * D,
        conditions=('persona {"in": ["sales", "marketing"]}',),
        select=_both(WELCOME_SALES_MARKETING),
    ),
    HandRule(
        "welcome-invited-data-engineer",
        after=0 * H,
        expires=24 * H,
        email="welcome_invited_data_engineer",
        guide=None,
        guide_ttl=None,
        conditions=(
            'persona {"eq": "data_engineer"}',
            'signup_source {"eq": "invited"}',
        ),
        select=_both(WELCOME_INVITED_DATA_ENGINEER),
    ),
    HandRule(
        "invited-data-engineer-community-24h",
        after=24 * H,
        expires=24 * H,
        email="community_invite",
        guide=None,
        guide_ttl=None,
        conditions=(
            'persona {"eq": "data_engineer"}',
            'signup_source {"eq": "invited"}',
        ),
        select=_both(INVITED_DATA_ENGINEER_COMMUNITY),
    ),
    HandRule(
        "welcome-organic-data-engineer",
        after=0 * H,
        expires=24 * H,
        email="welcome_organic_data_engineer",
        guide=None,
        guide_ttl=None,
        conditions=(
            'persona {"eq": "data_engineer"}',
            'signup_source {"eq": "organic"}',
        ),
        select=_both(WELCOME_ORGANIC_DATA_ENGINEER),
    ),
    HandRule(
        "organic-data-engineer-no-connection-24h",
        after=24 * H,
        expires=48 * H,
        email="nudge_connection",
        guide="create_connection_tour",
        guide_ttl=7 * D,
        conditions=(
            'persona {"eq": "data_engineer"}',
            'signup_source {"eq": "organic"}',
            "not_done connection_created",
            "not_done workflow_saved",
        ),
        select=_both(ORGANIC_DATA_ENGINEER_NO_CONNECTION),
    ),
    HandRule(
        "welcome-explorer",
        after=0 * H,
        expires=24 * H,
        email="welcome_explorer",
        guide=None,
        guide_ttl=None,
        conditions=('persona {"in": ["analyst", "other"]}',),
        select=_both(WELCOME_EXPLORER),
    ),
    HandRule(
        "abandoned-ingest-workflow",
        after=2 * H,
        expires=3 * D,
        email=None,
        guide="ingest_workflow_guide",
        guide_ttl=7 * D,
        conditions=(
            'persona {"eq": "data_engineer"}',
            'since.where direction={"eq": "ingest"}',
            "not_done workflow_saved",
        ),
        anchor="workflow_started",
        select={d: abandoned_workflow("ingest", d) for d in DIRECTION},
    ),
    HandRule(
        "abandoned-egress-workflow",
        after=2 * H,
        expires=3 * D,
        email=None,
        guide="egress_workflow_guide",
        guide_ttl=7 * D,
        conditions=(
            'persona {"eq": "data_engineer"}',
            'since.where direction={"eq": "egress"}',
            "not_done workflow_saved",
        ),
        anchor="workflow_started",
        select={d: abandoned_workflow("egress", d) for d in DIRECTION},
    ),
    HandRule(
        "verify-reminder-24h",
        after=24 * H,
        expires=20 * H,
        email="verify_reminder",
        guide=None,
        guide_ttl=None,
        conditions=(
            "not_done email_verified",
            "not_done connection_created",
        ),
        select=_both(VERIFY_REMINDER),
    ),
    HandRule(
        "verify-reminder-connected-24h",
        after=24 * H,
        expires=20 * H,
        email="verify_reminder_connected",
        guide=None,
        guide_ttl=None,
        conditions=(
            "not_done email_verified",
            "done connection_created",
        ),
        select=_both(VERIFY_REMINDER_CONNECTED),
    ),
    HandRule(
        "verified-and-connected-next-step",
        after=0 * H,
        expires=72 * H,
        email="workflow_tutorial",
        guide="build_workflow_tour",
        guide_ttl=7 * D,  # the config default (the rule sets no guide_ttl)
        conditions=(
            'persona {"eq": "data_engineer"}',
            "not_done workflow_saved",
            "done email_verified",
            "done connection_created",
        ),
        select=_both(VERIFIED_AND_CONNECTED),
    ),
    HandRule(
        "win-back-lapsed-data-engineer",
        after=14 * D,
        expires=7 * D,
        email="win_back",
        guide=None,
        guide_ttl=None,
        conditions=(
            'persona {"eq": "data_engineer"}',
            'done workflow_run within 74d count {"gte": 3}',
        ),
        select=_both(WIN_BACK),
        anchor="workflow_run",
        occurrence="last",
        repeat_after=30 * D,
        before_now=(("runs_since", 74 * D),),
    ),
    HandRule(
        "trial-account-no-workflow-day3",
        after=3 * D,
        expires=2 * D,
        email="trial_account_nudge",
        guide=None,
        guide_ttl=None,
        conditions=(
            'account.plan {"eq": "trial"}',
            "account_not_done workflow_run",
        ),
        select={d: trial_account(d) for d in PLAN},
        anchor="account_created",
        once_per="account",
    ),
    HandRule(
        "data-engineer-month-after-activation",
        after=30 * D,
        expires=7 * D,
        email="cohort_check_in",
        guide=None,
        guide_ttl=None,
        conditions=('persona {"eq": "data_engineer"}',),
        select=_both(MONTH_AFTER_ACTIVATION),
        anchor="workflow_run",  # since: activated, with reports.activation_event's default
    ),
)

# ---- the INSERT around each SELECT -----------------------------------------------------

INSERT_COLUMNS = (
    "rule_id, user_id, subject, occurrence, status, reason, email_template, email_to, guide_id, "
    "anchor_at, anchor_event_id, fire_at, send_at, holdout, message_id, attempts, created_at, "
    "updated_at"
)
FLAG_COLUMNS = "delivery_id, user_id, guide_id, rule_id, status, set_at, expires_at, updated_at"
DATETIME_PARAMS = ("now", "earliest", "latest", "guide_expires_at")


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def _fire_at(rule: HandRule, dialect: str) -> str:
    seconds = int(rule.after.total_seconds())
    if seconds == 0:
        return "c.anchor_at"
    if dialect == "postgresql":
        return f"c.anchor_at + interval '{seconds} seconds'"
    # Stored SQLite datetimes are fixed-width text with microseconds; keep that format.
    return f"strftime('%Y-%m-%d %H:%M:%f', c.anchor_at, '+{seconds} seconds') || '000'"


def insert_sql(rule: HandRule, dialect: str) -> str:
    """INSERT ... SELECT ... ON CONFLICT DO NOTHING (SQLite needs the WHERE to parse it)."""
    email = rule.email is not None
    values = ", ".join(
        (
            _literal(rule.id),
            "c.user_id",
            "c.subject",
            "c.occurrence",
            _literal("pending" if email else "sent"),
            "NULL",
            _literal(rule.email),
            "c.email" if email else "NULL",
            _literal(rule.guide),
            "c.anchor_at",
            "c.anchor_event_id",
            _fire_at(rule, dialect),
            ":now" if email else "NULL",
            "FALSE",
            "NULL",
            "0",
            ":now",
            ":now",
        )
    )
    return (
        f"INSERT INTO deliveries ({INSERT_COLUMNS})\n"
        f"SELECT {values}\nFROM ({rule.select[dialect]}) AS c\nWHERE TRUE\n"
        "ON CONFLICT (rule_id, subject, occurrence) DO NOTHING"
    )


def _flag_values(rule: HandRule, source: str) -> str:
    return (
        f"SELECT {source}.id, {source}.user_id, {_literal(rule.guide)}, {_literal(rule.id)}, "
        "'active', :now, :guide_expires_at, :now"
    )


def statements_sql(rule: HandRule, dialect: str) -> list[str]:
    """The statements, in order, that write this rule's ledger rows and guide flags."""
    insert = insert_sql(rule, dialect)
    if rule.guide is None:
        return [insert]
    if dialect == "postgresql":
        return [
            f"WITH written AS (\n{insert}\nRETURNING id, user_id\n)\n"
            f"INSERT INTO guide_flags ({FLAG_COLUMNS})\n{_flag_values(rule, 'written')}\n"
            "FROM written"
        ]
    flags = (
        f"INSERT INTO guide_flags ({FLAG_COLUMNS})\n{_flag_values(rule, 'd')}\n"
        f"FROM deliveries AS d\nWHERE d.rule_id = {_literal(rule.id)} AND d.created_at = :now\n"
        "  AND NOT EXISTS (SELECT 1 FROM guide_flags AS g WHERE g.delivery_id = d.id)"
    )
    return [insert, flags]


@dataclass(frozen=True)
class Statement:
    clause: TextClause
    params: tuple[str, ...]  # the named parameters it takes


def _statement(sql: str, rule: HandRule) -> Statement:
    """A text() statement whose datetime parameters bind like the engine's columns."""
    known = (*DATETIME_PARAMS, "repeat_since", *(name for name, _ in rule.before_now))
    names = tuple(name for name in known if f":{name}" in sql)
    clause = text(sql).bindparams(*[bindparam(name, type_=UTCDateTime()) for name in names])
    return Statement(clause, names)


@dataclass(frozen=True)
class Compiled:
    rule: HandRule
    statements: tuple[Statement, ...]


def compile_pack(dialect: str, rule_ids: Sequence[str] | None = None) -> list[Compiled]:
    return [
        Compiled(rule, tuple(_statement(sql, rule) for sql in statements_sql(rule, dialect)))
        for rule in HAND_RULES
        if rule_ids is None or rule.id in rule_ids
    ]


def _params(rule: HandRule, now: datetime) -> dict[str, datetime | None]:
    latest = now - rule.after
    ttl = rule.guide_ttl
    return {
        "now": now,
        "earliest": latest - rule.expires,
        "latest": latest,
        "guide_expires_at": now + ttl if ttl is not None else None,
        "repeat_since": now - rule.repeat_after if rule.repeat_after is not None else None,
        **{name: now - before for name, before in rule.before_now},
    }


def run_rule(connection: Connection, compiled: Compiled, now: datetime) -> None:
    params = _params(compiled.rule, now)
    for statement in compiled.statements:
        connection.execute(statement.clause, {name: params[name] for name in statement.params})


def run_pack(engine: Engine, pack: Sequence[Compiled], now: datetime) -> None:
    """Every rule, one transaction each (as the engine writes a rule's batch together)."""
    for compiled in pack:
        with engine.begin() as connection:
            run_rule(connection, compiled, now)


def check_against(rules: RuleSet, default_guide_ttl: timedelta) -> None:
    """Fail when the hand-copied constants no longer describe the loaded rule pack."""
    problems = [] if _same_ids(rules) else [_id_problem(rules)]
    for hand in HAND_RULES:
        if hand.id in {r.id for r in rules.enabled}:
            problems.extend(_rule_problems(hand, rules, default_guide_ttl))
    if problems:
        raise BenchError(
            "the hand-written SQL (bench/handsql.py) no longer matches rules/*.yaml:\n  "
            + "\n  ".join(problems)
        )


def _same_ids(rules: RuleSet) -> bool:
    return {r.id for r in rules.enabled} == {h.id for h in HAND_RULES}


def _id_problem(rules: RuleSet) -> str:
    enabled, hand = {r.id for r in rules.enabled}, {h.id for h in HAND_RULES}
    return f"enabled rules without hand SQL: {sorted(enabled - hand)}; hand SQL without an enabled rule: {sorted(hand - enabled)}"  # noqa: E501


def _rule_problems(hand: HandRule, rules: RuleSet, default_guide_ttl: timedelta) -> list[str]:
    rule = rules.get(hand.id)
    ttl = (rule.send.guide_ttl or default_guide_ttl) if rule.send.guide else None
    pairs = {
        "after": (rule.when.after, hand.after),
        "expires": (rule.expires, hand.expires),
        "send.email": (rule.send.email, hand.email),
        "send.guide": (rule.send.guide, hand.guide),
        "guide_ttl": (ttl, hand.guide_ttl),
        "since": (rule.when.anchor_name, hand.anchor),
        "since.occurrence": (rule.when.occurrence, hand.occurrence),
        "once_per": (rule.once_per, hand.once_per),
        "since.key": (rule.when.occurrence_key, None),  # no hand SQL names occurrences by key
        "repeat_after": (rule.repeat_after, hand.repeat_after),
        "conditions": (conditions(rule), hand.conditions),
    }
    problems = [
        f"{hand.id}: {name} is {yaml!r} in the YAML but {mine!r} in the hand SQL"
        for name, (yaml, mine) in pairs.items()
        if yaml != mine
    ]
    return problems + _window_problems(hand, rule)


def _window_problems(hand: HandRule, rule: Rule) -> list[str]:
    """Each recency window the hand SQL binds is a `within` of one of the rule's items."""
    when = rule.when
    items = (*when.not_done, *when.done, *when.account_not_done, *when.account_done)
    withins = {item.within for item in items}
    return [
        f"{hand.id}: :{name} is now - {before} in the hand SQL, but no item of the YAML has "
        f"that `within`"
        for name, before in hand.before_now
        if before not in withins
    ]


def conditions(rule: Rule) -> tuple[str, ...]:
    """The rule's audience and event items, one line each, as the hand SQL spells them out
    (a `where` on the anchor, a `within` or a `count` that the SQL does not read is a drift
    `check_against` must see)."""
    audience = rule.audience
    lines = [
        f"{name} {_ops(ops)}"
        for name, ops in (("persona", audience.persona), ("signup_source", audience.signup_source))
        if ops is not None
    ]
    lines += [f"traits.{key} {_ops(ops)}" for key, ops in audience.traits.items()]
    lines += [f"account.{key} {_ops(ops)}" for key, ops in audience.account.items()]
    if rule.when.anchor_where:
        lines.append(f"since.where {_where(rule.when.anchor_where)}")
    when = rule.when
    for label, items in (
        ("not_done", when.not_done),
        ("done", when.done),
        ("account_not_done", when.account_not_done),
        ("account_done", when.account_done),
    ):
        lines += [f"{label} {_item(item)}" for item in items]
    return tuple(lines)


def _ops(ops: Ops) -> str:
    return json.dumps(ops.model_dump(by_alias=True, exclude_none=True), sort_keys=True)


def _where(where: dict[str, Ops]) -> str:
    return " ".join(f"{key}={_ops(ops)}" for key, ops in sorted(where.items()))


def _item(item: EventItem) -> str:
    parts = [item.event]
    if item.where:
        parts.append(f"where {_where(item.where)}")
    if item.within is not None:
        parts.append(f"within {item.within.total_seconds() / 86400:g}d")
    if item.count is not None:
        parts.append(f"count {json.dumps(item.count.model_dump(exclude_none=True))}")
    return " ".join(parts)
