"""Fixtures for the integration tests, on top of tests/conftest.py."""

from tests.smtp_fixtures import smtp_certs, smtp_server, smtp_tls_server

__all__ = ["smtp_certs", "smtp_server", "smtp_tls_server"]
