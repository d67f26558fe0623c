"""Email rendering: Jinja2's sandbox, StrictUndefined, autoescape for HTML only, each email
bounded in time and size (engine.delivery.bounds): one template cannot hang the dispatch.

A template is a directory `templates/<name>/` with `subject.txt`, `body.txt` and `body.html`,
and translations of them in `templates/<name>/<locale>/` (engine.delivery.locales).
Plain dicts in, never ORM objects or rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError, select_autoescape

from engine.delivery.bounds import BoundedEnvironment, RenderLimits
from engine.delivery.locales import fallbacks, locale_dirs, missing_parts
from engine.errors import TemplateError as RenderError
from engine.model import USER_FIELDS

PARTS = ("subject.txt", "body.txt", "body.html")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def template_names(directory: Path) -> set[str]:
    """Directories holding all three parts; names starting with `_` are shared pieces."""
    if not directory.is_dir():
        return set()
    return {
        entry.name
        for entry in directory.iterdir()
        if entry.is_dir()
        and not entry.name.startswith(("_", "."))
        and all((entry / part).is_file() for part in PARTS)
    }


class Renderer:
    def __init__(self, directory: Path, limits: RenderLimits | None = None) -> None:
        self.directory = directory
        self.env = BoundedEnvironment(
            loader=FileSystemLoader(str(directory)),
            undefined=StrictUndefined,
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            keep_trailing_newline=True,
            limits=limits,
        )
        # Read once (a reload builds a new Renderer, or swaps its loader for a snapshot, before
        # any render): the dispatch renders thousands of emails, and looking each part up on
        # disk would be three stat calls; and the snapshot, not the disk, is what renders.
        self._files: frozenset[str] | None = None
        self._locales: dict[str, dict[str, str]] = {}
        self._parts: dict[tuple[str, tuple[str, ...]], dict[str, str]] = {}

    def names(self) -> set[str]:
        return template_names(self.directory)

    def files(self) -> frozenset[str]:
        """Every template path the loader has (`name/es/body.txt`)."""
        if self._files is None:
            loader = self.env.loader
            self._files = frozenset(loader.list_templates() if loader is not None else ())
        return self._files

    def locales(self, name: str) -> dict[str, str]:
        """The template's translations: normalised tag -> directory name."""
        found = self._locales.get(name)
        if found is None:
            found = self._locales[name] = locale_dirs(name, self.files())
        return found

    def missing_translations(self, name: str) -> list[str]:
        """The parts the template's translations lack (each falls back alone)."""
        return missing_parts(name, self.files(), PARTS)

    def parts(self, name: str, locale: str | None = None) -> dict[str, str]:
        """Each part's template path for `locale`: its own translation, its base language's,
        else the default (a part a translation lacks falls back alone)."""
        known = self.locales(name)
        chain = tuple(known[tag] for tag in fallbacks(locale) if tag in known)
        paths = self._parts.get((name, chain))
        if paths is None:
            files = self.files()
            paths = {
                part: next(
                    (f"{name}/{d}/{part}" for d in chain if f"{name}/{d}/{part}" in files),
                    f"{name}/{part}",
                )
                for part in PARTS
            }
            self._parts[(name, chain)] = paths
        return paths

    def render(
        self, name: str, context: Mapping[str, Any], locale: str | None = None
    ) -> RenderedEmail:
        """Render all three parts, in `locale` where translated; raise RenderError naming the
        file, line and cause. The three parts share one deadline (RenderLimits.seconds)."""
        paths = self.parts(name, locale)
        with self.env.deadline():
            out = self._render_parts(paths, context)
        subject = " ".join(out["subject.txt"].split())
        if not subject:
            raise RenderError(f"{paths['subject.txt']}: the subject rendered empty")
        return RenderedEmail(subject, out["body.txt"].strip() + "\n", out["body.html"])

    def render_one(self, path: str, context: Mapping[str, Any]) -> str:
        """One template file (a webhook's body), under the same bounds as an email."""
        with self.env.deadline():
            return self._render_parts({path: path}, context)[path]

    def _render_parts(self, paths: Mapping[str, str], context: Mapping[str, Any]) -> dict[str, str]:
        out = {}
        for part, path in paths.items():
            try:
                out[part] = self.env.get_template(path).render(context)
            except Exception as exc:  # a template may call methods that raise anything
                line = _template_line(exc, path)
                where = f"{path}:{line}" if line else path
                text = exc.message if isinstance(exc, TemplateError) else str(exc)
                raise RenderError(f"{where}: {type(exc).__name__}: {text}") from exc
        return out


def _template_line(exc: BaseException, path: str) -> int | None:
    """Syntax errors carry a line; runtime errors only in the traceback Jinja rewrites so
    that its frames point into the template file."""
    line = getattr(exc, "lineno", None)
    if isinstance(line, int):
        return line
    found = None
    trace = exc.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename.endswith(path):
            found = trace.tb_lineno
        trace = trace.tb_next
    return found


def email_context(
    *,
    user: Mapping[str, Any],
    account: Mapping[str, Any] | None,
    inviter: Mapping[str, Any] | None,
    rule_id: str,
    rule_description: str,
    anchor_name: str,
    anchor_at: datetime,
    anchor_properties: Mapping[str, Any],
    guide_id: str | None,
    guide_expires_at: datetime | None,
    links: Mapping[str, str],
    brand: Mapping[str, str],
    unsubscribe_url: str,
) -> dict[str, Any]:
    """The variables every template sees (the README documents them). `account` is the
    user's account as the store's directory reads it (`id`, `traits`, `member_count`) and
    `inviter` the user who invited them (`id`, `email`, `traits`), each None when there is
    none."""
    traits = dict(user.get("traits") or {})
    return {
        "user": {
            **{k: user.get(k) for k in _USER_KEYS},
            "traits": traits,
            "first_name": first_name(traits),
        },
        "account": None
        if account is None
        else {
            "id": account["id"],
            "traits": dict(account.get("traits") or {}),
            "member_count": int(account.get("member_count") or 0),
        },
        "inviter": None
        if inviter is None
        else {
            "id": inviter["id"],
            "email": inviter.get("email"),
            "first_name": first_name(inviter.get("traits") or {}),
        },
        "rule": {"id": rule_id, "description": rule_description},
        "anchor": {"name": anchor_name, "at": anchor_at, "properties": dict(anchor_properties)},
        "guide": {"id": guide_id, "expires_at": guide_expires_at} if guide_id else None,
        "links": dict(links),
        "brand": dict(brand),
        "unsubscribe_url": unsubscribe_url,
    }


_USER_KEYS = tuple(name for name in USER_FIELDS if name != "traits")


def first_name(traits: Mapping[str, Any]) -> str | None:
    for key in ("first_name", "firstName"):
        value = traits.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    name = traits.get("name")
    if isinstance(name, str) and name.strip():
        return name.split()[0]
    return None
