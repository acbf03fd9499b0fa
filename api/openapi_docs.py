"""What the OpenAPI document says about bodies FastAPI does not parse itself.

The front doors read their bodies themselves (api/json_body.py), so that errors
come in each door's own shape; FastAPI then knows neither their request schema
nor that they may answer an event stream. These helpers say both, so the
document (and a client generated or a fuzzer driven from it) matches the wire.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

EVENT_STREAM = "text/event-stream"


def json_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring `model` as the route's required JSON body."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined_schema(model)}},
        }
    }


def event_stream(description: str, *, or_json: bool = False) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a 200 of Server-Sent Events; `or_json` when the request may
    instead ask for one JSON object (the doors' `stream: false`).

    A route documented this way should have `response_class=Response`, whose
    media type is None: FastAPI would otherwise file every other status it
    documents under the stream's media type too, but errors are JSON.
    """
    content: dict[str, Any] = {EVENT_STREAM: {"schema": {"type": "string"}}}
    if or_json:
        content["application/json"] = {"schema": {"type": "object"}}
    return {200: {"description": description, "content": content}}


def also_as_event_stream(
    responses: dict[int | str, dict[str, Any]], status: int
) -> dict[int | str, dict[str, Any]]:
    """`responses` where `status` may also come as an event stream: a client that asked
    for `text/event-stream` gets a refused stream's 503 as an SSE `error` event."""
    documented = dict(responses)
    entry = dict(documented[status])
    entry["content"] = {EVENT_STREAM: {"schema": {"type": "string"}}}
    documented[status] = entry
    return documented


def _inlined_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its `$defs` written in place.

    A schema placed inside an operation cannot point at `#/$defs/...`: that
    pointer would resolve against the whole OpenAPI document. The request models
    are not recursive, so writing each definition where it is used terminates.
    """
    schema = model.model_json_schema()
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            siblings = {key: inline(value) for key, value in node.items() if key != "$ref"}
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return {**inline(definitions[reference.removeprefix("#/$defs/")]), **siblings}
            return siblings
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined
