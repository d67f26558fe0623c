"""A minimal project on disk for tests: a rule pack and email templates in a directory."""

from __future__ import annotations

from pathlib import Path

# subject.txt, body.txt, body.html of a plain note that carries the unsubscribe link.
NOTE = (
    "A note for {{ user.id }}",
    "Hello. Unsubscribe: {{ unsubscribe_url }}",
    "<p>Hello</p><a href='{{ unsubscribe_url }}'>x</a>",
)


def write_project(
    directory: Path, rules: str, templates: dict[str, tuple[str, str, str]] | None = None
) -> Path:
    """`rules/pack.yaml` holding `rules`, and one template directory per name (the `note`
    template when none are given); returns `directory`."""
    (directory / "rules").mkdir()
    (directory / "rules" / "pack.yaml").write_text(rules)
    for name, parts in (templates or {"note": NOTE}).items():
        template = directory / "templates" / name
        template.mkdir(parents=True)
        for part, text in zip(("subject.txt", "body.txt", "body.html"), parts, strict=True):
            (template / part).write_text(text)
    return directory
