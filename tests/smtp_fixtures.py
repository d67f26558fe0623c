"""Pytest fixtures for a real SMTP server (see tests/smtp_server.py). Make them available by
importing them into a conftest.py (tests/integration/conftest.py does)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smtp_server import Certs, SmtpServer, make_certs


@pytest.fixture
def smtp_certs(tmp_path: Path) -> Certs:
    """A private CA and a server certificate for 127.0.0.1; `ca_file` is the CA's PEM."""
    return make_certs(tmp_path)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain SMTP server (no TLS, no AUTH) on 127.0.0.1."""
    with SmtpServer() as server:
        yield server


@pytest.fixture
def smtp_tls_server(smtp_certs: Certs) -> Iterator[SmtpServer]:
    """An SMTP server offering STARTTLS with a certificate from `smtp_certs` (which a test can
    also request, for the CA file)."""
    with SmtpServer(tls_context=smtp_certs.server_context) as server:
        yield server
