"""YAML documents that remember where each value was written, so errors can name `file:line`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.errors import Problem


@dataclass(frozen=True)
class Located:
    """A parsed document and the node tree it came from."""

    data: Any
    root: yaml.Node | None
    file: str

    def line(self, path: Sequence[object]) -> int | None:
        """1-based line of the deepest node along `path` (mapping keys, sequence indexes)."""
        node = self.root
        if node is None:
            return None
        line: int = node.start_mark.line + 1
        for step in path:
            child = _child(node, step)
            if child is None:
                break
            node, line = child
        return line


def _child(node: yaml.Node, step: object) -> tuple[yaml.Node, int] | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(step):
                # A missing-value error points at the key; a nested one descends into the value.
                return value, key.start_mark.line + 1
        return None
    if (
        isinstance(node, yaml.SequenceNode)
        and isinstance(step, int)
        and 0 <= step < len(node.value)
    ):
        item = node.value[step]
        return item, item.start_mark.line + 1
    return None


def read_source(path: Path) -> str | Problem:
    """A rule or config file's text; a file that is not UTF-8 is a problem at the line of
    its first bad byte (an editor's Latin-1 save, a binary dropped in), not a traceback."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        byte = data[exc.start : exc.start + 1].hex()
        message = f"not UTF-8 text: byte 0x{byte} (save the file as UTF-8)"
        return Problem(message, str(path), line)


# Aliases may share values (`<<: *defaults`), but a value may not expand, once every alias is
# followed, to more than this many nodes: an "alias bomb" (billion laughs) of a few lines
# would otherwise take the checker, the loader and everything reading the data for ever.
MAX_EXPANDED_NODES = 100_000


def load_yaml(text: str, file: str) -> tuple[Located | None, list[Problem]]:
    """Parse safely; report syntax errors, alias bombs and duplicate keys with their lines."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        bomb = _alias_bomb(root, file) if root is not None else None
        if bomb is not None:  # refused before constructing: merge keys expand as they load
            return None, [bomb]
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        return None, [Problem(f"invalid YAML: {reason}", file, line)]
    except yaml.YAMLError as exc:
        return None, [Problem(f"invalid YAML: {exc}", file)]
    problems = _duplicate_keys(root, file) if root is not None else []
    return Located(data, root, file), problems


def _alias_bomb(root: yaml.Node, file: str) -> Problem | None:
    """A problem at the first (innermost) value whose expansion exceeds the bound. An alias
    is the very node its anchor names, so sizes are counted once per node (memoised): linear
    in the document, however many times an alias repeats."""
    sizes: dict[int, int] = {}
    # Iterative post-order: nesting depth is the parser's business, not this check's.
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not expanded:
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        size = 1 + sum(sizes.get(id(child), 0) for child in children)
        sizes[id(node)] = size
        if size > MAX_EXPANDED_NODES:
            return Problem(
                f"YAML aliases expand this value to more than {MAX_EXPANDED_NODES:,} values "
                "(an alias bomb?): repeat less, or write the values out",
                file,
                node.start_mark.line + 1,
            )
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _duplicate_keys(root: yaml.Node, file: str) -> list[Problem]:
    """Duplicate keys of every mapping, each mapping visited once: an aliased mapping is
    the anchored node itself, reported at its anchor's lines."""
    problems: list[Problem] = []
    visited: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key, _value in node.value:
                if isinstance(key, yaml.ScalarNode):
                    if key.value in seen:
                        line = key.start_mark.line + 1
                        problems.append(Problem(f"duplicate key {key.value!r}", file, line))
                    seen.add(key.value)
        stack.extend(reversed(_children(node)))
    problems.sort(key=lambda p: p.line or 0)
    return problems
