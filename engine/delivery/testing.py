"""A mail transport for tests and benchmarks: the in-memory fake of `MailTransport`. The
engine never builds one; tests and `bench/` hand it to `open_app` or a `Runner`."""

from __future__ import annotations

from email.message import EmailMessage


class RecordingTransport:
    """The in-memory fake: keeps every message; can be told to fail."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.fail_with: Exception | None = None

    def send(self, message: EmailMessage) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.messages.append(message)
        return f"recorded #{len(self.messages)}"
