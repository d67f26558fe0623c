"""Every error the engine reports to a person says where: file, line, rule, field or request."""

from __future__ import annotations

from dataclasses import dataclass


class LifecycleError(Exception):
    """Base class: an error the CLI prints as a clear message instead of a traceback."""


@dataclass(frozen=True)
class Problem:
    """One located problem, printed as `file:line: [rule] message`."""

    message: str
    file: str | None = None
    line: int | None = None
    rule_id: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        rule = f"rule {self.rule_id!r}: " if self.rule_id else ""
        return f"{where}{rule}{self.message}"


class ProblemsError(LifecycleError):
    """Carries every problem found, so that one run reports them all, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(ProblemsError):
    """The configuration file or an environment override is invalid."""


class RuleError(ProblemsError):
    """One or more rule files are invalid."""


class TemplateError(LifecycleError):
    """A template is missing or failed to render."""


class DurationError(ValueError):
    """A duration string such as `24h` could not be parsed."""
