"""YAML documents that remember where each value was written, so errors can name `file:line`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


def load_yaml(text: str, file: str) -> tuple[Located | None, list[Problem]]:
    """Parse safely; report syntax errors and duplicate keys with their lines."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = exc.problem or str(exc)
        return None, [Problem(f"invalid YAML: {reason}", file, line)]
    except yaml.YAMLError as exc:
        return None, [Problem(f"invalid YAML: {exc}", file)]
    problems = list(_duplicate_keys(root, file)) if root is not None else []
    return Located(data, root, file), problems


def _duplicate_keys(node: yaml.Node, file: str) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    problems.append(
                        Problem(f"duplicate key {key.value!r}", file, key.start_mark.line + 1)
                    )
                seen.add(key.value)
            problems.extend(_duplicate_keys(value, file))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            problems.extend(_duplicate_keys(item, file))
    return problems
