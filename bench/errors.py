"""The one error the harness raises: the run cannot produce trustworthy figures."""

from __future__ import annotations


class BenchError(Exception):
    """Abort the benchmark with a message that says what went wrong and where."""
