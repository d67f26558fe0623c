"""Test seams over the store, for tests and benchmarks (never used by the engine itself).

`intercept(part, name=around, ...)` wraps one part of a `Store` (its ledger, outbox, people,
guides or reads) so that the named methods go through `around(real_method, *args, **kwargs)`;
every other method is the real one. Hand the result to `Store.replacing(...)`:

    store.replacing(guides=intercept(store.guides, active_guides=raising(RuntimeError())))

This is the one documented way to inject a fault or time a call: nothing subclasses a part."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

Part = TypeVar("Part")
Around = Callable[..., Any]  # (real method, *args, **kwargs) -> result


class _Intercepted:
    def __init__(self, part: object, around: dict[str, Around]) -> None:
        self._part = part
        self._around = around

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._part, name)
        around = self._around.get(name)
        if around is None:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            return around(real, *args, **kwargs)

        return call


def intercept(part: Part, **around: Around) -> Part:
    """`part` with the named methods routed through their `around` functions."""
    missing = [name for name in around if not callable(getattr(part, name, None))]
    if missing:
        raise AttributeError(f"{type(part).__name__} has no method {', '.join(missing)}")
    return cast(Part, _Intercepted(part, around))


def raising(error: BaseException) -> Around:
    """An `around` that raises `error` instead of calling the real method."""

    def around(_real: Callable[..., Any], *_args: Any, **_kwargs: Any) -> Any:
        raise error

    return around
