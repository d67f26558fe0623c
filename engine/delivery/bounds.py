"""Rendering bounded in time and size, so that one template cannot stop all sending.

Jinja's sandbox keeps a template from reaching Python's internals, not from looping for ever
or building a gigabyte string: `('a' * 999999999)|length` allocates 1 GB, and a loop for one
user would hang the dispatch job (and, through the lease, the next one). Here:

- time: a deadline per render. A trace function (this thread only, while it renders) checks
  it at every line the template's compiled code runs and at every Python call made meanwhile,
  so that pure loops, recursive macros and slow filters all stop; every hook below checks it
  too.
- size: nothing a template makes may weigh more than `max_chars` (a string's length; a
  container's items, counted through every reference, as `str()` would expand them). The
  operators that grow values (`*`, `+`, `**`, `%`, `~`), the filters, the calls and the
  output expressions are checked before they compute, on estimates, so that the gigabyte is
  never allocated; `range` is bounded; so is each part's whole output.

A render over a bound raises RenderLimitError at the template line it had reached."""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from types import FrameType, GeneratorType
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

SUM_COPY_FACTOR = 100  # |sum(start=[]) copies: len x weight may be this many times max_chars
CHECK_EVERY = 64  # trace events between two looks at the clock (a clock read costs)
# Formatting widths and precisions: `'%999999999d' % 1` and `'{:>999999999}'.format(x)`.
_PRINTF_WIDTH = re.compile(r"%[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_WIDTH = re.compile(r"\{[^{}]*?:[^{}]*?(\d+)(?:\.(\d+))?[^{}]*\}")
_GROWING_STR_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
_CONSUMING_FILTERS = frozenset({"join", "sum"})
_INT_BITS = 100_000  # integers beyond this many bits (30,000 digits) are no email's business


class RenderLimitError(Exception):
    """A render went over a bound (time or size); the message says which."""


@dataclass(frozen=True)
class RenderLimits:
    seconds: float = 2.0  # per email: its three parts together
    max_chars: int = 1_000_000  # any value a template makes, and each part's output
    max_range: int = 10_000  # items from range(): no email lists more


class _Deadline(threading.local):
    """The render in progress on this thread: its deadline, and a countdown to the next
    clock read."""

    def __init__(self) -> None:
        self.at: float | None = None
        self.seconds = 0.0
        self.countdown = CHECK_EVERY

    def check(self) -> None:
        if self.at is not None and time.monotonic() > self.at:
            self.at = None  # raise once: the template's own clean-up must not fail again
            raise RenderLimitError(f"rendering took longer than {self.seconds:g}s (the limit)")


class BoundedEnvironment(SandboxedEnvironment):
    """A SandboxedEnvironment whose renders are bounded (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "+", "**", "%", "//"})

    def __init__(self, *args: Any, limits: RenderLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, finalize=self._finalize, **kwargs)
        self.limits = limits or RenderLimits()
        self.code_generator_class = _BoundedCodeGenerator
        self._deadline = _Deadline()
        self.globals["range"] = self._range
        self.filters = {name: self._bounded_filter(name, f) for name, f in self.filters.items()}

    # ---- time ------------------------------------------------------------------------

    @contextmanager
    def deadline(self) -> Iterator[None]:
        """Bound everything rendered inside (one email) by `limits.seconds`."""
        state = self._deadline
        if state.at is not None:  # nested (an include renders inside a render): one deadline
            yield
            return
        state.at, state.seconds = time.monotonic() + self.limits.seconds, self.limits.seconds
        previous = sys.gettrace()
        sys.settrace(_tracer(self, state))  # this thread only; a debugger's comes back after
        try:
            yield
        finally:
            sys.settrace(previous)
            state.at = None

    def _tick(self) -> None:
        state = self._deadline
        state.countdown -= 1
        if state.countdown <= 0:
            state.countdown = CHECK_EVERY
            state.check()

    # ---- size ------------------------------------------------------------------------

    def _refuse_over(self, estimate: int, what: str) -> None:
        limit = self.limits.max_chars
        if estimate > limit:
            raise RenderLimitError(f"{what} would make a value of {estimate:,} (limit {limit:,})")

    def _weighed(self, value: Any, what: str) -> Any:
        self._refuse_over(weight(value, self.limits.max_chars), what)
        return value

    def _finalize(self, value: Any) -> Any:
        """Every `{{ ... }}` output: `str()` of a shared nested list expands it all."""
        if not isinstance(value, str):
            self._weighed(value, "an output expression")
        return value

    def _range(self, *args: int) -> range:
        values = range(*args)
        if len(values) > self.limits.max_range:
            raise RenderLimitError(
                f"range() of {len(values):,} items (limit {self.limits.max_range:,})"
            )
        return values

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        self._deadline.check()
        self._refuse_over(_binop_estimate(operator, left, right), f"the operator {operator!r}")
        if operator in ("*", "**") and _ints(left, right):
            bits = _int_bits(operator, left, right)
            if bits > _INT_BITS:
                raise RenderLimitError(f"{operator!r} would make a {bits:,}-bit integer")
        result = super().call_binop(context, operator, left, right)
        return self._weighed(result, f"the operator {operator!r}")

    def call(
        __self,
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        __self._deadline.check()
        name = getattr(__obj, "__name__", "a call")
        __self._refuse_over(_call_estimate(__obj, args, kwargs), f"{name}()")
        result = super().call(__context, __obj, *args, **kwargs)
        return __self._weighed(result, f"{name}()")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """str.format and format_map, which the sandbox wraps on attribute access."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner: str = value.__self__

        @wraps(wrapped)
        def bounded(*args: Any, **kwargs: Any) -> str:
            self._refuse_over(_format_estimate(owner, args, kwargs), f"{value.__name__}()")
            return wrapped(*args, **kwargs)

        return bounded

    def join_bounded(self, join: Callable[[Iterable[Any]], str], parts: tuple[Any, ...]) -> str:
        """`~`: the parts become strings, so their weights add up."""
        self._refuse_over(sum(weight(p, self.limits.max_chars) for p in parts), "'~'")
        return join(parts)

    def concat(self, parts: Iterable[str]) -> str:
        """A part's whole output (and a captured block's): bounded as it is produced. The
        error is thrown into the template's generator, so it names the template line."""
        out: list[str] = []
        size = 0
        limit = self.limits.max_chars
        iterator = iter(parts)
        for chunk in iterator:
            size += len(chunk)
            out.append(chunk)
            if size > limit:
                error = RenderLimitError(f"the output is longer than {limit:,} characters")
                if isinstance(iterator, GeneratorType):
                    iterator.throw(error)
                raise error
            self._tick()
        return "".join(out)

    def _bounded_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """A filter checked before (its arguments' and its known growth) and after."""

        @wraps(function)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            self._deadline.check()
            if name in _CONSUMING_FILTERS:  # they consume iterables in C: count them first
                args = _listed(args)
            self._refuse_over(_filter_estimate(name, args, kwargs), f"the filter {name!r}")
            return self._weighed(function(*args, **kwargs), f"the filter {name!r}")

        return bounded


TraceFunction = Callable[[FrameType, str, Any], Any]


def _tracer(env: BoundedEnvironment, state: _Deadline) -> TraceFunction:
    """The trace function of one render: it sees every Python call, and every line of the
    template's own compiled code (a pure loop makes no call). Closures and a local
    countdown, as it runs at every event: a few times the cost of rendering, not more."""
    countdown = CHECK_EVERY  # the countdown is inlined: a call per event would double the cost

    def lines(frame: FrameType, event: str, arg: Any) -> TraceFunction:
        nonlocal countdown
        countdown -= 1
        if countdown <= 0:
            countdown = CHECK_EVERY
            state.check()
        return lines

    def calls(frame: FrameType, event: str, arg: Any) -> TraceFunction | None:
        nonlocal countdown
        countdown -= 1
        if countdown <= 0:
            countdown = CHECK_EVERY
            state.check()
        return lines if frame.f_globals.get("environment") is env else None

    return calls


class _BoundedCodeGenerator(CodeGenerator):
    """`~` (jinja2's Concat node) calls plain str_join: route it through join_bounded."""

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            func_name = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            func_name = "markup_join"
        else:
            func_name = "str_join"
        self.write(f"environment.join_bounded({func_name}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


# ---- estimates -------------------------------------------------------------------------


def weight(value: Any, budget: int) -> int:
    """What `str(value)` would expand to, roughly: a string's length, a container's items
    through every reference (a list that holds itself twice, thirty times over, weighs 2**30
    although it takes no room). Linear in the distinct objects (memoised); stops counting
    once over `budget`."""
    if not _is_container(value):
        return _leaf(value)
    weights: dict[int, int] = {}
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, done = stack.pop()
        if id(item) in weights:
            continue
        children = _items(item)
        if not done:
            stack.append((item, True))
            stack.extend((c, False) for c in children if _is_container(c) and id(c) not in weights)
            continue
        total = 1 + sum(weights.get(id(c), 0) if _is_container(c) else _leaf(c) for c in children)
        weights[id(item)] = min(total, budget + 1)  # capped: no huge integers either
    return weights[id(value)]


def _is_container(value: Any) -> bool:
    return isinstance(value, list | tuple | dict | set | frozenset)


def _items(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [part for pair in value.items() for part in pair]
    return list(value)


def _leaf(value: Any) -> int:
    """Characters a scalar becomes as a string, roughly."""
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() * 3 // 10 + 1  # decimal digits
    return 24 if isinstance(value, float) else 1


def _listed(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The filter's value (its first argument after any context) as a list: a generator
    (`map`, `select`) is consumed in Python, under the deadline, and can then be measured."""
    for index, arg in enumerate(args):
        if not isinstance(arg, Context | EvalContext | SandboxedEnvironment):
            if isinstance(arg, Iterable) and not isinstance(arg, str | bytes | dict):
                return (*args[:index], list(arg), *args[index + 1 :])
            return args
    return args


def _ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _int_values(values: Iterable[Any]) -> list[int]:
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]


def _int_bits(operator: str, left: int, right: int) -> int:
    if operator == "*":
        return left.bit_length() + right.bit_length()
    if right <= 0 or abs(left) <= 1:  # a fraction, or 0/1/-1 whatever the power
        return 1
    return left.bit_length() * right


def _binop_estimate(operator: str, left: Any, right: Any) -> int:
    budget = 1 << 62
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if _is_sequence(seq) and isinstance(times, int) and not isinstance(times, bool):
                return max(times, 0) * weight(seq, budget)
        return 0
    if operator == "+" and _is_sequence(left) and _is_sequence(right):
        return weight(left, budget) + weight(right, budget)
    if operator == "%" and isinstance(left, str):
        args = right if isinstance(right, tuple) else (right,)
        return len(left) + _widths(_PRINTF_WIDTH, left, args) + sum(weight(a, budget) for a in args)
    return 0


def _is_sequence(value: Any) -> bool:
    return isinstance(value, str | bytes | list | tuple)


def _widths(pattern: re.Pattern[str], text: str, args: tuple[Any, ...] = ()) -> int:
    """The widths and precisions a format string asks for (`*` takes them from `args`)."""
    total = 0
    for match in pattern.finditer(text):
        for group in match.groups():
            if group == "*":
                total += sum(a for a in args if _ints(a) and a > 0)
            elif group:
                total += int(group)
    return total


def _call_estimate(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """Calls that grow a string from a small one: str's padding methods, join, replace,
    expandtabs and format."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    if not isinstance(owner, str):
        return 0
    values = [*args, *kwargs.values()]
    if name in _GROWING_STR_METHODS:
        return max([len(owner), *_int_values(values)])
    if name == "expandtabs":
        size = next(iter(_int_values(values)), 8)
        return len(owner) + owner.count("\t") * max(size, 0)
    if name == "join" and args:
        return _join_estimate(args[0], owner)
    if name == "replace" and len(args) >= 2:
        return _replace_estimate(owner, args[0], args[1])
    return 0


def _format_estimate(owner: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """str.format and format_map: the widths asked for, plus what goes in."""
    budget = 1 << 62
    values = [*args, *kwargs.values()]
    return len(owner) + _widths(_FORMAT_WIDTH, owner) + sum(weight(v, budget) for v in values)


def _join_estimate(items: Any, separator: Any) -> int:
    if not isinstance(items, list | tuple | set | frozenset | dict | str):
        return 0
    budget = 1 << 62
    sep = len(separator) if isinstance(separator, str) else 0
    return weight(items, budget) + sep * max(len(items) - 1, 0)


def _replace_estimate(text: Any, old: Any, new: Any) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    count = text.count(old) if old else len(text) + 1
    return len(text) + count * len(new)


def _filter_estimate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """The value and arguments a filter gets, and what the growing filters would make."""
    budget = 1 << 62
    # A filter's first argument may be the environment or a context (pass_context etc.).
    values = [a for a in args if not isinstance(a, Context | EvalContext | SandboxedEnvironment)]
    named = list(kwargs.values())
    base = max([0, *(weight(v, budget) for v in [*values, *named])])
    value = values[0] if values else None
    rest = [*values[1:], *named]
    if name == "center":
        return max([base, *_int_values(rest)])
    if name == "indent" and isinstance(value, str):
        given = rest[0] if rest else 4  # a number of spaces, or the string to indent with
        width = len(given) if isinstance(given, str) else next(iter(_int_values([given])), 4)
        return len(value) + (value.count("\n") + 1) * max(width, 0)
    if name in ("batch", "slice"):
        return max([base, *_int_values(rest[:1])])
    if name == "join" and value is not None:
        separator = rest[0] if rest else ""
        return _join_estimate(value, separator)
    if name == "replace" and len(rest) >= 2:
        return _replace_estimate(value, rest[0], rest[1])
    if name == "format" and isinstance(value, str):
        return len(value) + _widths(_PRINTF_WIDTH, value, tuple(rest)) + base
    if name == "sum" and isinstance(value, list) and any(_is_sequence(v) for v in rest):
        # Adding sequences copies the running total at each step: quadratic, in C.
        return len(value) * base // SUM_COPY_FACTOR
    return base
