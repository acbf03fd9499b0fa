"""Errors through the front doors raise the SDKs' own exception classes."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam

from tests.support.processes import ApiProcess, stack_env
from tests.support.stack import Stack

OPENAI_MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
MESSAGES: list[MessageParam] = [{"role": "user", "content": "hi"}]


async def test_unknown_provider_is_a_bad_request(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(openai.BadRequestError) as openai_error:
        await openai_client.chat.completions.create(model="nope/model", messages=OPENAI_MESSAGES)
    assert "unknown provider 'nope'" in openai_error.value.message
    assert isinstance(openai_error.value.body, dict)
    assert openai_error.value.body["type"] == "invalid_request_error"

    with pytest.raises(anthropic.BadRequestError) as anthropic_error:
        await anthropic_client.messages.create(
            model="nope/model",
            max_tokens=10,
            messages=MESSAGES,
        )
    body = anthropic_error.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "unknown provider 'nope'" in body["error"]["message"]


async def test_unconfigured_provider_through_the_other_door(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(anthropic.BadRequestError) as anthropic_error:
        await anthropic_client.messages.create(
            model="openai/gpt-4o-mini",
            max_tokens=10,
            messages=MESSAGES,
        )
    assert "provider 'openai' is not configured" in str(anthropic_error.value)

    # A bare model name is the door's own provider: claude-* through the Anthropic door.
    with pytest.raises(anthropic.BadRequestError) as bare:
        await anthropic_client.messages.create(
            model="claude-house-model",
            max_tokens=10,
            messages=MESSAGES,
        )
    assert "provider 'anthropic' is not configured" in str(bare.value)

    with pytest.raises(openai.BadRequestError) as openai_error:
        await openai_client.chat.completions.create(
            model="anthropic/claude-sonnet-4-5",
            messages=OPENAI_MESSAGES,
        )
    assert "provider 'anthropic' is not configured" in openai_error.value.message


async def test_unknown_demo_model_fails_in_the_worker(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    # Queued, then refused by the provider: non-streaming answers carry the failure...
    with pytest.raises(openai.BadRequestError) as openai_error:
        await openai_client.chat.completions.create(model="demo/nope", messages=OPENAI_MESSAGES)
    assert "unknown demo model" in openai_error.value.message
    assert openai_error.value.response.headers["x-generation-id"].startswith("gen_")

    with pytest.raises(anthropic.BadRequestError):
        await anthropic_client.messages.create(model="demo/nope", max_tokens=10, messages=MESSAGES)

    # ...and streams end with the format's error event, which the SDKs raise.
    stream = await openai_client.chat.completions.create(
        model="demo/nope",
        messages=OPENAI_MESSAGES,
        stream=True,
    )
    with pytest.raises(openai.APIError) as in_stream:
        async for _chunk in stream:
            pass
    assert "unknown demo model" in in_stream.value.message

    with pytest.raises(anthropic.APIStatusError) as anthropic_stream_error:
        async with anthropic_client.messages.stream(
            model="demo/nope",
            max_tokens=10,
            messages=MESSAGES,
        ) as anthropic_stream:
            await anthropic_stream.get_final_message()
    body = anthropic_stream_error.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"


async def test_invalid_fields_are_bad_requests_naming_the_field(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(openai.BadRequestError) as openai_error:
        await openai_client.chat.completions.create(
            model="demo/echo",
            messages=OPENAI_MESSAGES,
            temperature=7,
        )
    assert isinstance(openai_error.value.body, dict)
    assert openai_error.value.body["param"] == "temperature"
    assert openai_error.value.param == "temperature"

    with pytest.raises(openai.BadRequestError) as no_messages:
        await openai_client.chat.completions.create(model="demo/echo", messages=[])
    assert no_messages.value.param == "messages"

    with pytest.raises(openai.BadRequestError) as images:
        await openai_client.chat.completions.create(
            model="demo/echo",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ],
        )
    assert "image_url" in images.value.message

    with pytest.raises(anthropic.BadRequestError) as anthropic_error:
        await anthropic_client.messages.create(
            model="demo/echo",
            max_tokens=10,
            messages=MESSAGES,
            extra_body={"temperature": 1.5},  # older SDKs' keyword; the API still takes it
        )
    assert "temperature" in str(anthropic_error.value)

    with pytest.raises(anthropic.BadRequestError):
        await anthropic_client.messages.create(model="demo/echo", max_tokens=0, messages=MESSAGES)


async def test_malformed_bodies_in_each_door_shape(client: httpx.AsyncClient) -> None:
    not_json = await client.post(
        "/v1/chat/completions", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    error = not_json.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"

    no_max_tokens = await client.post(
        "/v1/messages", json={"model": "demo/echo", "messages": MESSAGES}
    )
    assert no_max_tokens.status_code == 400
    assert no_max_tokens.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"},
    }

    unknown_field = await client.post(
        "/v1/chat/completions",
        json={"model": "demo/echo", "messages": MESSAGES, "frobnicate": True},
    )
    assert unknown_field.status_code == 400
    assert unknown_field.json()["error"]["param"] == "frobnicate"


@pytest.fixture(scope="module")
def keyed_api(stack: Stack) -> Iterator[ApiProcess]:
    """A second API process, on the same Redis and worker, that requires an API key."""
    api = ApiProcess(stack_env(stack.redis_url, TOKENRELAY_API_KEYS="sk-right,sk-other"))
    try:
        yield api.wait_ready()
    finally:
        api.stop()


async def test_authentication(keyed_api: ApiProcess) -> None:
    wrong_openai = openai.AsyncOpenAI(
        base_url=f"{keyed_api.base_url}/v1", api_key="sk-wrong", max_retries=0
    )
    with pytest.raises(openai.AuthenticationError) as openai_error:
        await wrong_openai.chat.completions.create(model="demo/echo", messages=OPENAI_MESSAGES)
    assert openai_error.value.code == "invalid_api_key"

    wrong_anthropic = anthropic.AsyncAnthropic(
        base_url=keyed_api.base_url, api_key="sk-wrong", max_retries=0
    )
    with pytest.raises(anthropic.AuthenticationError) as anthropic_error:
        await wrong_anthropic.messages.create(model="demo/echo", max_tokens=10, messages=MESSAGES)
    body = anthropic_error.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "authentication_error"

    right_openai = openai.AsyncOpenAI(
        base_url=f"{keyed_api.base_url}/v1", api_key="sk-right", max_retries=0
    )
    completion = await right_openai.chat.completions.create(
        model="demo/echo", messages=OPENAI_MESSAGES
    )
    assert completion.choices[0].message.content == "hi"

    right_anthropic = anthropic.AsyncAnthropic(
        base_url=keyed_api.base_url, api_key="sk-other", max_retries=0
    )
    message = await right_anthropic.messages.create(
        model="demo/echo", max_tokens=10, messages=MESSAGES
    )
    assert message.content[0].type == "text" and message.content[0].text == "hi"
    for sdk_client in (wrong_openai, right_openai, wrong_anthropic, right_anthropic):
        await sdk_client.close()


async def test_an_oversized_body_is_a_413_in_each_doors_shape(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    """The body limit answers before routing, in the shape the door's SDK reads."""
    huge: list[ChatCompletionMessageParam] = [{"role": "user", "content": "x" * 2_000_000}]
    with pytest.raises(openai.APIStatusError) as openai_error:
        await openai_client.with_options(max_retries=0).chat.completions.create(
            model="demo/echo", messages=huge
        )
    assert openai_error.value.status_code == 413
    assert isinstance(openai_error.value.body, dict)
    assert openai_error.value.body["type"] == "request_too_large"
    assert "exceeds the limit" in openai_error.value.message

    with pytest.raises(anthropic.APIStatusError) as anthropic_error:
        await anthropic_client.with_options(max_retries=0).messages.create(
            model="demo/echo",
            max_tokens=10,
            messages=[{"role": "user", "content": "x" * 2_000_000}],
        )
    assert anthropic_error.value.status_code == 413
    body = anthropic_error.value.body
    assert isinstance(body, dict) and body["type"] == "error", body
    assert body["error"]["type"] == "request_too_large"
