"""YAML sources: alias bombs are refused fast with their file:line, ordinary anchors and merge
keys still load, duplicate keys inside an aliased mapping are reported once."""

from __future__ import annotations

import time

import pytest

from engine.rules.yamlsource import MAX_EXPANDED_NODES, load_yaml


def bomb(levels: int, *, merge: bool = False, width: int = 9) -> str:
    """`levels` anchors, each repeating the previous one `width` times (billion laughs)."""
    lines = ["a0: &a0 {x: 1}" if merge else "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, levels + 1):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} " + (f"{{<<: [{refs}]}}" if merge else f"[{refs}]"))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 7, 8, 9, 12])
@pytest.mark.parametrize("merge", [False, True], ids=["sequences", "merge-keys"])
def test_alias_bombs_are_refused_fast_with_their_line(levels: int, merge: bool) -> None:
    started = time.monotonic()
    located, problems = load_yaml(bomb(levels, merge=merge), "rules/bomb.yaml")
    assert time.monotonic() - started < 1.0
    assert located is None
    assert len(problems) == 1
    problem = problems[0]
    assert problem.file == "rules/bomb.yaml"
    assert problem.line == 6  # a5, the first value beyond the bound (9**5 x 10 = 590,490)
    assert f"more than {MAX_EXPANDED_NODES:,} values" in problem.message


def test_a_small_alias_use_loads() -> None:
    text = "defaults: &d {persona: analyst, source: organic}\nrule: {<<: *d, id: a}\nagain: *d\n"
    located, problems = load_yaml(text, "x.yaml")
    assert problems == []
    assert located is not None
    assert located.data["rule"] == {"persona": "analyst", "source": "organic", "id": "a"}
    assert located.data["again"] == {"persona": "analyst", "source": "organic"}


def test_a_duplicate_key_in_an_aliased_mapping_is_reported_once() -> None:
    text = "a: &a\n  k: 1\n  k: 2\nb: [*a, *a, *a]\n"
    _, problems = load_yaml(text, "x.yaml")
    assert [str(p) for p in problems] == ["x.yaml:3: duplicate key 'k'"]


def test_just_under_the_bound_loads() -> None:
    _, problems = load_yaml(bomb(4), "x.yaml")  # a4: 9**4 x 10 = 65,610 values, 73k in all
    assert problems == []
