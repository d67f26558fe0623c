"""Delivery channels: email transports (file outbox, console, recording fake)."""
