"""Wiring: from a validated config to a store, rules, renderer, transport and runner, and the
checks of a project (`lifecycle check`, reloads)."""
