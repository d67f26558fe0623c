"""What a rule would do: the users it fires for at a time (the dry run, one page of it),
and one user's email rendered by the dispatcher's own composer, or, when the rule does not
fire for them, the explain lines saying why."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from engine.decide.firing import Planned
from engine.delivery.render import RenderedEmail
from engine.errors import LifecycleError, TemplateError
from engine.rules.language import Rule
from engine.runner import Runner
from engine.whatif.explain import Explanation, explain


@dataclass(frozen=True)
class UserPreview:
    user_id: str
    planned: Planned | None
    rendered: RenderedEmail | None
    render_error: str | None
    explanation: Explanation | None  # when the rule does not fire for the user
    problem: str | None = None  # e.g. an unknown user


def upcoming(runner: Runner, rule: Rule, at: datetime, *, limit: int, offset: int) -> list[Planned]:
    """One page of what a tick at `at` would write for the rule (limit + 1 rows, so that
    the caller knows whether there is a next page); the plan stops there, unread."""
    batches = runner.plan(at, rule_ids=[rule.id], ordered=True)
    try:
        rows: Iterator[Planned] = (planned for batch in batches for planned in batch)
        return list(itertools.islice(rows, offset, offset + limit + 1))
    finally:
        # A generator over a server-side cursor: closing it now returns its connection.
        close = getattr(batches, "close", None)
        if close is not None:
            close()


def preview(runner: Runner, rule: Rule, user_id: str, at: datetime) -> UserPreview:
    previews = runner.dry_run(at, rule_ids=[rule.id], user_ids=[user_id], render=False)
    if not previews:
        try:
            why = explain(runner, rule.id, user_id, at)
        except LifecycleError as exc:
            return UserPreview(user_id, None, None, None, None, str(exc))
        return UserPreview(user_id, None, None, None, why)
    planned = previews[0].planned
    if planned.email_template is None:
        return UserPreview(user_id, planned, None, None, None)
    # Held-out and skipped rows are rendered too: "what it would look like" is the question.
    try:
        rendered = runner.composer.render_planned(rule, planned)
    except TemplateError as exc:
        return UserPreview(user_id, planned, None, str(exc), None)
    return UserPreview(user_id, planned, rendered, None, None)
