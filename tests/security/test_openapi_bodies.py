"""/openapi.json describes every request body (issue 15, item 13): the schemathesis run found 9
POST operations (ingestion, the unsubscribe token) whose bodies it could not know. Fetched
from the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx

from tests.security.kit import TIMEOUT, Api, api, keyed_project

__all__ = ["api", "keyed_project"]

CALLS = ("identify", "track", "page", "screen", "group", "alias")


def document(api: Api) -> dict[str, Any]:
    spec: dict[str, Any] = httpx.get(api.url + "/openapi.json", timeout=TIMEOUT).json()
    return spec


def body_schema(spec: dict[str, Any], path: str, media: str = "application/json") -> Any:
    return spec["paths"][path]["post"]["requestBody"]["content"][media]["schema"]


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def test_every_post_operation_describes_its_request_body(api: Api) -> None:
    spec = document(api)
    posts = {path: ops["post"] for path, ops in spec["paths"].items() if "post" in ops}
    assert len(posts) >= 9
    undescribed = [
        path
        for path, operation in posts.items()
        if not any(
            media.get("schema")
            for media in operation.get("requestBody", {}).get("content", {}).values()
        )
    ]
    assert undescribed == []


def test_every_reference_in_the_document_resolves(api: Api) -> None:
    spec = document(api)
    schemas = spec.get("components", {}).get("schemas", {})
    for reference in references(spec):
        assert reference.startswith("#/components/schemas/"), reference
        assert reference.removeprefix("#/components/schemas/") in schemas, reference


def test_the_batch_body_lists_the_six_calls(api: Api) -> None:
    schema = body_schema(document(api), "/v1/batch")
    assert schema["required"] == ["batch"]
    kinds = schema["properties"]["batch"]["items"]["anyOf"]
    assert sorted(kind["properties"]["type"]["const"] for kind in kinds) == sorted(CALLS)
    track = next(k for k in kinds if k["properties"]["type"]["const"] == "track")
    assert sorted(track["required"]) == ["event", "type"]


def test_a_single_call_body_needs_no_type_and_takes_a_write_key(api: Api) -> None:
    spec = document(api)
    required = {call: set(body_schema(spec, f"/v1/{call}").get("required", [])) for call in CALLS}
    assert required == {
        "identify": {"userId"},
        "track": {"event"},
        "page": set(),
        "screen": set(),
        "group": {"groupId"},
        "alias": {"previousId", "userId"},
    }
    assert all("writeKey" in body_schema(spec, f"/v1/{c}")["properties"] for c in CALLS)


def test_the_one_click_unsubscribe_body_is_the_rfc_8058_form(api: Api) -> None:
    spec = document(api)
    media = "application/x-www-form-urlencoded"
    schema = body_schema(spec, "/unsubscribe/{token}", media)
    assert schema["properties"]["List-Unsubscribe"]["enum"] == ["One-Click"]
    assert spec["paths"]["/unsubscribe/{token}"]["post"]["requestBody"]["required"] is False
