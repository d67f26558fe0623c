"""lifecycle: a rules-driven lifecycle engagement engine."""

__version__ = "0.1.0"
