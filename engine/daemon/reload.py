"""Hot reload of rules and templates for `lifecycle run`.

A change (the watcher thread or SIGHUP) loads the whole set again and validates it exactly as
`lifecycle check` does. A valid set replaces the running one between ticks, under the lock the
tick job holds, so a tick never sees half a rule set; an invalid one is logged with its
`file:line` problems and the last good set keeps running. Deliveries are never touched: the
ledger history of a removed rule stays."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jinja2 import BaseLoader, Environment, TemplateNotFound
from watchfiles import watch

from engine.app.checks import validate
from engine.config import Config
from engine.delivery.render import Renderer
from engine.errors import Problem
from engine.rules.language import RuleSet
from engine.runner import Runner

log = logging.getLogger("lifecycle.reload")
WATCH_RESTART_DELAY = 1.0  # seconds before a failed watch starts again


@dataclass(frozen=True)
class Changes:
    """Rule ids, each sorted, by what happened to them."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.modified)

    def __str__(self) -> str:
        if self.empty:
            return "no rule changed"
        parts = [
            f"{what} {', '.join(ids)}"
            for what, ids in (
                ("added", self.added),
                ("removed", self.removed),
                ("modified", self.modified),
            )
            if ids
        ]
        return "; ".join(parts)


def changes(old: RuleSet, new: RuleSet) -> Changes:
    """What differs between two rule sets, by rule id. Rules are frozen pydantic models, so
    equality compares every field (enabling or disabling a rule is a modification)."""
    before = {rule.id: rule for rule in old.rules}
    after = {rule.id: rule for rule in new.rules}
    return Changes(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        modified=tuple(sorted(i for i in before.keys() & after.keys() if before[i] != after[i])),
    )


class _SnapshotLoader(BaseLoader):
    """Templates read once into memory, reported under their file names so that render
    errors still say `file:line` (Jinja names traceback frames after the file name)."""

    def __init__(self, directory: Path, files: dict[str, str]) -> None:
        self.directory = directory
        self.files = files

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        if template not in self.files:
            raise TemplateNotFound(template)
        return self.files[template], str(self.directory / template), lambda: True

    def list_templates(self) -> list[str]:
        return sorted(self.files)


def frozen_renderer(directory: Path) -> Renderer:
    """A renderer over an in-memory copy of the templates. Jinja's FileSystemLoader re-reads
    a template whose file changed, which would let an unvalidated edit reach the running
    engine; a snapshot changes only when a reload swaps in a validated one."""
    renderer = Renderer(directory)
    files: dict[str, str] = {}
    if directory.is_dir():
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                # A half-written or binary file must not stop the snapshot; validation of
                # the templates that use it reports the problem.
                files[path.relative_to(directory).as_posix()] = path.read_text(errors="replace")
    renderer.env.loader = _SnapshotLoader(directory, files)
    return renderer


class Reloader:
    """Owns validation, the swap and its log. `lock` is the lock the tick job holds for the
    whole of each tick; the swap takes it too, so it lands between two ticks."""

    def __init__(self, runner: Runner, config: Config, *, lock: threading.Lock | None = None):
        self.runner = runner
        self.config = config
        self.lock = lock or threading.Lock()
        self._reloading = threading.Lock()  # one reload at a time (watcher vs SIGHUP)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        with self.lock:
            # From now on templates change only through a validated swap (see frozen_renderer).
            runner.renderer = frozen_renderer(config.templates_dir)

    @property
    def rules(self) -> RuleSet:
        return self.runner.rules

    def reload(self, reason: str) -> Changes | None:
        """Validate the set on disk and swap it in; None (and the old set kept) if invalid."""
        with self._reloading:
            renderer = frozen_renderer(self.config.templates_dir)
            result, rules, renderer = validate(self.config, renderer)
            if result.problems or rules is None:
                self._rejected(reason, result.problems)
                return None
            with self.lock:
                diff = changes(self.runner.rules, rules)
                self.runner.rules = rules
                self.runner.renderer = renderer
            log.info(
                "reloaded rules and templates (%s): %d rules (%d enabled); %s",
                reason,
                len(rules.rules),
                len(rules.enabled),
                diff,
            )
            return diff

    def _rejected(self, reason: str, problems: list[Problem]) -> None:
        lines = "\n".join(f"  {problem}" for problem in problems) or "  (no rules loaded)"
        log.error(
            "reload (%s) rejected, the last good rules and templates keep running:\n%s",
            reason,
            lines,
        )

    # ---- the watcher -------------------------------------------------------------------

    def start(self, *, debounce_ms: int = 500) -> None:
        """Watch the rules and templates directories in a background thread."""
        directories = [d for d in (self.config.rules_dir, self.config.templates_dir) if d.is_dir()]
        if not directories:
            log.warning("no rules or templates directory to watch; reload with SIGHUP")
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, args=(directories, debounce_ms), name="reload-watcher", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _watch(self, directories: list[Path], debounce_ms: int) -> None:
        """Until `stop`: whatever a file holds, a failed reload is logged and the watcher
        goes on; should the watch itself fail (a directory removed), it starts again."""
        while not self._stop.is_set():
            try:
                for batch in watch(
                    *directories,
                    stop_event=self._stop,
                    debounce=debounce_ms,
                    rust_timeout=1000,  # wake up regularly so `stop` is prompt
                    raise_interrupt=False,
                ):
                    files = sorted({Path(path).name for _, path in batch})
                    self._safe_reload(f"changed: {', '.join(files)}")
            except Exception:
                # The daemon goes on with the last good rules; SIGHUP reloads meanwhile.
                log.exception("the rules/templates watcher failed; watching again shortly")
                self._stop.wait(WATCH_RESTART_DELAY)

    def request(self, reason: str) -> None:
        """Reload in a thread of its own: a signal handler must not wait for a tick."""
        threading.Thread(target=self._safe_reload, args=(reason,), daemon=True).start()

    def _safe_reload(self, reason: str) -> None:
        try:
            self.reload(reason)
        except Exception:
            log.exception("reload (%s) failed; the last good rules keep running", reason)
