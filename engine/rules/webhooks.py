"""The `send.webhook` block of a rule: where to POST, which body template, extra headers; and
the policy the loader holds its URL to. Pure: no HTTP, no templates.

A URL is written in the rule (`https://crm.example/hooks/pql`) or names an endpoint of the
config (`$sales_slack`: `webhooks.endpoints.sales_slack`), so that a URL that is itself a
secret (a Slack incoming webhook's) lives where the other secrets do, in the config or the
environment, not in a rule file under version control."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictStr

# RFC 9110 token characters: what a header name may be spelt with.
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
# The engine sets these: a rule that set them would break the signature or the framing.
RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
    }
)
ENDPOINT_PREFIX = "$"


class Webhook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: Annotated[StrictStr, Field(min_length=1)]
    body: Annotated[StrictStr, Field(min_length=1)]  # a template: templates/<body>/body.json
    headers: dict[Annotated[str, Field(pattern=HEADER_NAME)], StrictStr] = Field(
        default_factory=dict
    )


@dataclass(frozen=True)
class WebhookPolicy:
    """What the config allows a rule's webhook: plain-http hosts beyond loopback, the named
    endpoints, and (None: not checked) the body templates there are."""

    allow_http: frozenset[str] = frozenset()
    endpoints: Mapping[str, str] = field(default_factory=dict)
    templates: Collection[str] | None = None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve(
    webhook: Webhook, policy: WebhookPolicy, *, enabled: bool = True
) -> tuple[str | None, list[str]]:
    """The URL to POST to, and every problem with the block (each names its key). A disabled
    rule may name an endpoint the config does not have yet (a shipped rule waiting for its
    URL); its URL stays the `$name` it was written as, which the dispatcher refuses."""
    problems: list[str] = []
    url: str | None = webhook.url
    if webhook.url.startswith(ENDPOINT_PREFIX):
        name = webhook.url[len(ENDPOINT_PREFIX) :]
        url = policy.endpoints.get(name)
        if url is None and not enabled:
            url = webhook.url
        elif url is None:
            known = ", ".join(sorted(policy.endpoints)) or "none"
            problems.append(
                f"send.webhook.url: no endpoint {name!r} in webhooks.endpoints (known: {known})"
            )
    if url is not None and not url.startswith(ENDPOINT_PREFIX):
        # An endpoint's URL is a secret: its problem names the endpoint, never the URL.
        where = webhook.url if webhook.url.startswith(ENDPOINT_PREFIX) else None
        problem = url_problem(url, policy.allow_http, shown=where)
        if problem:
            problems.append(f"send.webhook.url: {problem}")
            url = None
    for name, value in webhook.headers.items():
        if name.lower() in RESERVED_HEADERS:
            problems.append(f"send.webhook.headers: {name!r} is set by the engine")
        if re.search(r"[\r\n\x00]", value):
            problems.append(f"send.webhook.headers.{name}: a line break or NUL in the value")
    templates = policy.templates
    if templates is not None and webhook.body not in templates:
        known = ", ".join(sorted(templates)) or "none"
        problems.append(
            f"send.webhook.body: template {webhook.body!r} does not exist "
            f"(templates/<name>/body.json; known: {known})"
        )
    return url, problems


def url_problem(url: str, allow_http: Collection[str], *, shown: str | None = None) -> str | None:
    """Why the engine will not POST to `url`, or None: https anywhere; plain http only to a
    loopback address or a host the config allows (`webhooks.allow_http`). `shown` is what
    the message quotes instead of the URL (an endpoint's name)."""
    label = shown or "the URL"
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        return f"{label} is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return f"{label} must be an https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return f"{label} must not carry credentials (set them in send.webhook.headers)"
    if parts.scheme == "http" and not (is_loopback(host) or host.lower() in allow_http):
        return (
            f"{label} is plain http to {host}: use https, or allow the host in "
            "webhooks.allow_http (loopback is always allowed)"
        )
    return None
