"""Rendering bounded in time and size (engine.delivery.bounds): every way a template can loop
for ever or build a huge value fails that render with a clear reason and its template line,
fast and without the allocation."""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from engine.delivery.bounds import RenderLimits
from engine.delivery.render import Renderer
from engine.errors import TemplateError

LIMITS = RenderLimits(seconds=0.5, max_chars=100_000, max_range=1_000)
PEAK_BYTES = 20_000_000  # far below what any of these would allocate unbounded


def renderer(tmp_path: Path, body: str, limits: RenderLimits = LIMITS) -> Renderer:
    template = tmp_path / "t"
    template.mkdir(exist_ok=True)
    (template / "subject.txt").write_text("Hello")
    (template / "body.txt").write_text("first line\n" + body)
    (template / "body.html").write_text("<p>hi</p>")
    return Renderer(tmp_path, limits)


def failure(tmp_path: Path, body: str) -> str:
    render = renderer(tmp_path, body)
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(TemplateError) as caught:
            render.render("t", {"user": {"id": "u1"}})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < PEAK_BYTES, f"{peak:,} bytes allocated"
    return str(caught.value)


GROWTH = {
    "string times": "{{ ('a' * 999999999)|length }}",
    "list times": "{{ ([1] * 999999999)|length }}",
    "plus": "{% set s = 'a' * 90000 %}{{ (s + s)|length }}",
    "tilde doubling": (
        "{% set ns = namespace(s='a') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"
    ),
    "shared list printed": "{% set x = ['aaaa'] %}" + "{% set x = [x, x] %}" * 40 + "{{ x }}",
    "center filter": "{{ 'a'|center(999999999) }}",
    "center method": "{{ 'a'.center(999999999) }}",
    "printf width": "{{ '%999999999d' % 1 }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "join separator": "{% set s = 'a' * 90000 %}{{ range(1000)|map('string')|join(s) }}",
    "replace": "{% set s = 'a' * 1000 %}{{ s|replace('a', s) }}",
    "indent": "{{ 'a\\nb'|indent(999999999) }}",
    "power": "{{ 7 ** 99999999 }}",
    "range": "{% for i in range(999999999) %}{% endfor %}",
}


@pytest.mark.parametrize("body", GROWTH.values(), ids=GROWTH.keys())
def test_growth_is_refused_before_it_allocates(tmp_path: Path, body: str) -> None:
    message = failure(tmp_path, body)
    assert message.startswith("t/body.txt:2: RenderLimitError: "), message
    assert "range()" in message or "limit 100,000" in message or "-bit integer" in message


LOOPS = {
    "nested loops, no output": (
        "{% set r = range(1000) %}{% for a in r %}{% for b in r %}{% for c in r %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    ),
    "exponential macro": (
        "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(60) }}"
    ),
    "lipsum": "{{ lipsum(n=100000000)|length }}",
}


@pytest.mark.parametrize("body", LOOPS.values(), ids=LOOPS.keys())
def test_a_render_is_bounded_in_time(tmp_path: Path, body: str) -> None:
    message = failure(tmp_path, body)
    assert "t/body.txt:" in message
    assert "rendering took longer than 0.5s" in message or "limit 100,000" in message


def test_the_output_is_bounded(tmp_path: Path) -> None:
    body = "{% for i in range(1000) %}{% for j in range(1000) %}xxxx{% endfor %}{% endfor %}"
    message = failure(tmp_path, body)
    assert message.startswith("t/body.txt:2: RenderLimitError: the output is longer than 100,000")


def test_ordinary_templates_render_as_before(tmp_path: Path) -> None:
    body = (
        "{{ user.id }} {{ '%5.2f' % 3.14159 }} {{ [1, 2]|join(', ') }} {{ 'a' ~ 'b' }} "
        "{{ 'x' * 3 }} {{ 2 ** 10 }} {{ '{:,}'.format(1234567) }} {{ range(3)|list }} "
        "{{ ('ab' + 'cd')|upper }} {{ 'a'|center(5) }}|{{ [[1], [2]]|sum(start=[]) }}"
    )
    rendered = renderer(tmp_path, body).render("t", {"user": {"id": "u1"}})
    assert rendered.text == (
        "first line\nu1  3.14 1, 2 ab xxx 1024 1,234,567 [0, 1, 2] ABCD   a  |[1, 2]\n"
    )


def test_the_deadline_is_per_render(tmp_path: Path) -> None:
    """A slow render fails; the next one gets its own deadline, and the thread's tracing
    is back as it was."""
    body = "{% for u in user.numbers %}{% for v in user.numbers %}{% endfor %}{% endfor %}"
    slow = renderer(tmp_path, body)
    many = {"id": "u1", "numbers": list(range(100_000))}
    before = sys.gettrace()
    with pytest.raises(TemplateError, match=r"rendering took longer than 0\.5s"):
        slow.render("t", {"user": many})
    assert sys.gettrace() is before
    assert slow.render("t", {"user": {"id": "u2", "numbers": [1, 2]}}).text == "first line\n"
