"""The OpenAPI document says what the routes answer: their errors, in each door's
shape, and event streams as `text/event-stream`."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

STREAMS = "text/event-stream"


@pytest.fixture()
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def answers(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses: dict[str, Any] = document["paths"][path][method]["responses"]
    return responses


def error_schema(document: dict[str, Any], method: str, path: str, status: int) -> str:
    content = answers(document, method, path)[str(status)]["content"]
    reference: str = content["application/json"]["schema"]["$ref"]
    return reference.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("post", "/v1/generations", {202, 400, 401, 403, 413, 415, 422, 503}),
        ("get", "/v1/generations", {200, 401, 422, 503}),
        ("get", "/v1/generations/{gen_id}", {200, 401, 404, 503}),
        ("post", "/v1/generations/{gen_id}/cancel", {202, 401, 403, 404, 409, 503}),
        ("get", "/v1/generations/{gen_id}/events", {200, 400, 401, 404, 422, 503}),
        ("get", "/v1/models", {200, 401}),
    ],
)
def test_native_routes_document_their_errors(
    document: dict[str, Any], method: str, path: str, statuses: set[int]
) -> None:
    documented = {int(status) for status in answers(document, method, path)}
    assert documented >= statuses
    for status in documented - {200, 202}:
        assert error_schema(document, method, path, status) == "ErrorAnswer", status
    assert "HTTPValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize(
    ("path", "answer"),
    [("/v1/chat/completions", "OpenAIErrorAnswer"), ("/v1/messages", "AnthropicErrorAnswer")],
)
def test_doors_document_their_bodies_streams_and_errors(
    document: dict[str, Any], path: str, answer: str
) -> None:
    operation = document["paths"][path]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert {"model", "messages"} <= set(body["required"])
    assert "$defs" not in str(body)  # self-contained: refs would not resolve in place
    assert set(operation["responses"]["200"]["content"]) == {"application/json", STREAMS}
    for status in (400, 401, 403, 409, 413, 415, 429, 502, 503, 504):
        assert error_schema(document, "post", path, status) == answer, status
    shape = document["components"]["schemas"][answer]
    if answer == "AnthropicErrorAnswer":
        assert shape["properties"]["type"] == {"const": "error", "title": "Type", "type": "string"}
    else:
        assert set(shape["properties"]) == {"error"}


def test_the_event_stream_is_typed_as_one(document: dict[str, Any]) -> None:
    events = answers(document, "get", "/v1/generations/{gen_id}/events")
    assert set(events["200"]["content"]) == {STREAMS}
    assert set(events["404"]["content"]) == {"application/json"}
    # A refused stream answers an EventSource in its own format.
    assert set(events["503"]["content"]) == {"application/json", STREAMS}
