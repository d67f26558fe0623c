"""Localised templates: `templates/<name>/<locale>/` holds translations of the template's parts
(`templates/<name>/es/subject.txt`, `templates/<name>/es-MX/body.html`). Each part is looked up
in the user's locale, then in its base language (`es-MX` -> `es`), then in the template's own
directory, its default. Locale tags are BCP 47-like: `es`, `es-MX`, `pt_BR`, `zh-Hant-TW`,
matched without regard to case or to `_` versus `-`."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

# A language of 2-3 letters, then subtags of 2-8 letters or digits: also what a directory may
# be named to be a locale (so that no other name inside a template is taken for one).
_TAG = re.compile(r"^([A-Za-z]{2,3})((?:[-_][A-Za-z0-9]{2,8})*)$")
MAX_TAG = 35  # RFC 5646's advice for the longest tag worth supporting


def normalize(tag: object) -> str | None:
    """`es_mx` -> `es-MX`; None for anything that is not a locale tag (a bad trait value is
    not an error: the user gets the default)."""
    if not isinstance(tag, str) or len(tag) > MAX_TAG:
        return None
    match = _TAG.match(tag.strip())
    if match is None:
        return None
    language, rest = match.groups()
    subtags = [language.lower()]
    for part in re.split(r"[-_]", rest)[1:]:
        if len(part) == 2 and part.isalpha():
            subtags.append(part.upper())  # a region
        elif len(part) == 4 and part.isalpha():
            subtags.append(part.title())  # a script
        else:
            subtags.append(part.lower())
    return "-".join(subtags)


def fallbacks(tag: object) -> list[str]:
    """The locales to try, most specific first: `zh-Hant-TW` -> zh-Hant-TW, zh-Hant, zh."""
    normal = normalize(tag)
    if normal is None:
        return []
    parts = normal.split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def user_locale(user: Mapping[str, Any]) -> str | None:
    """The user's `locale` trait (from identify's traits, or Segment's `context.locale`)."""
    traits = user.get("traits") or {}
    return normalize(traits.get("locale")) if isinstance(traits, Mapping) else None


def locale_dirs(name: str, files: Collection[str]) -> dict[str, str]:
    """Template `name`'s translations among `files` (template paths, `name/es/body.txt`):
    normalised tag -> directory name."""
    found: dict[str, str] = {}
    for path in sorted(files):
        parts = path.split("/")
        if len(parts) == 3 and parts[0] == name:
            tag = normalize(parts[1])
            if tag is not None:
                found.setdefault(tag, parts[1])
    return found


def missing_parts(name: str, files: Collection[str], parts: tuple[str, ...]) -> list[str]:
    """The files a translation lacks that the default has: that part goes out in the next
    fallback's language (`check` warns of each)."""
    present = set(files)
    return [
        f"{name}/{directory}/{part}"
        for directory in locale_dirs(name, present).values()
        for part in parts
        if f"{name}/{part}" in present and f"{name}/{directory}/{part}" not in present
    ]
