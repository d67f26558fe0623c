"""The request bodies of the ingestion routes, for /openapi.json only. The routes read the raw
body themselves (gzip, size limits, per-message errors), so FastAPI never sees these models;
engine.ingest.segment stays the one place that validates a message."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Id = str | int
Time = str | float
TIME = "ISO 8601, or epoch seconds"


class Message(BaseModel):
    """Fields every call may carry; others (`integrations`, ...) are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    userId: Id | None = Field(None, description="the product's user id, up to 255 characters")
    anonymousId: Id | None = Field(None, description="a visitor's id, before an identify")
    timestamp: Time | None = Field(None, description=f"{TIME}; default: when received")
    sentAt: Time | None = Field(None, description=f"{TIME}: corrects the client's clock")
    messageId: str | None = Field(
        None, description="de-duplicates; without one, a hash of the message does"
    )
    context: dict[str, Any] | None = Field(
        None, description="identify reads `traits`, `timezone` and `locale` from it"
    )


class Identify(Message):
    type: Literal["identify"]
    userId: Id = Field(description="required: an anonymousId alone is not stored")
    traits: dict[str, Any] | None = Field(None, description="mapped to the user's columns")


class Track(Message):
    type: Literal["track"]
    event: str = Field(min_length=1, max_length=255)
    properties: dict[str, Any] | None = None


class Page(Message):
    type: Literal["page"]
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class Screen(Message):
    type: Literal["screen"]
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] | None = None


class Group(Message):
    type: Literal["group"]
    groupId: Id = Field(description="the account id")
    traits: dict[str, Any] | None = Field(None, description="merged into the account")


class Alias(Message):
    type: Literal["alias"]
    previousId: Id = Field(description="an anonymous id: one with no user row of its own")
    userId: Id


class Batch(BaseModel):
    model_config = ConfigDict(extra="allow")

    batch: list[Identify | Track | Page | Screen | Group | Alias] = Field(
        description="the messages, each with its `type`; up to 500 KB in all, 32 KB each"
    )
    sentAt: Time | None = Field(None, description=f"{TIME}: for messages without their own")
    writeKey: str | None = Field(None, description="or the HTTP Basic user name")


CALL_MODELS: dict[str, type[Message]] = {
    "identify": Identify,
    "track": Track,
    "page": Page,
    "screen": Screen,
    "group": Group,
    "alias": Alias,
}


def batch_body() -> dict[str, Any]:
    """The `requestBody` of POST /v1/batch."""
    return _request_body(_inlined(Batch.model_json_schema()))


def call_body(call: str) -> dict[str, Any]:
    """The `requestBody` of POST /v1/{call}: one message, whose `type` the route implies."""
    schema = _inlined(CALL_MODELS[call].model_json_schema())
    schema["required"] = [name for name in schema.get("required", []) if name != "type"]
    schema["properties"]["writeKey"] = {
        "type": "string",
        "description": "or the HTTP Basic user name",
    }
    return _request_body(schema)


def _request_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `#/$defs/...` references replaced by the definitions: inside
    /openapi.json, such a reference would point at the document's root, not the schema."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return resolve(copy.deepcopy(definitions[reference.removeprefix("#/$defs/")]))
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
