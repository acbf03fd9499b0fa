"""The official `openai` SDK's `responses` resource, unchanged, against `POST /v1/responses`."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest
from openai.types.responses import FunctionToolParam, ResponseInputParam

from services.providers.demo import story_tokens
from tests.support.processes import ApiProcess
from tests.support.sse import read_sse
from tests.support.stack import Stack

PROMPT = "Background responses resume on any replica."

WEATHER: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
    "strict": False,
}


def gen_of(response_id: str) -> str:
    assert response_id.startswith("resp_")
    return "gen_" + response_id.removeprefix("resp_")


async def test_non_streaming_create(openai_client: openai.AsyncOpenAI) -> None:
    raw = await openai_client.responses.with_raw_response.create(
        model="demo/echo",
        instructions="Repeat after me.",
        input=PROMPT,
        metadata={"ticket": "42"},
    )
    response = raw.parse()

    assert raw.headers["x-generation-id"] == gen_of(response.id)
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == PROMPT
    assert response.instructions == "Repeat after me."
    assert response.metadata == {"ticket": "42"}
    assert response.model == "demo/echo"
    assert response.usage is not None
    assert response.usage.output_tokens == len(PROMPT.split())
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )


async def test_streaming_create_in_openai_event_order(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.responses.create(model="demo/echo", input=PROMPT, stream=True)
    events = [event async for event in stream]

    kinds = [event.type for event in events]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-5:] == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == PROMPT
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == PROMPT
    assert {e.item_id for e in events if e.type == "response.output_text.delta"} == {
        completed.response.output[0].id
    }


async def test_stream_helper_final_response(openai_client: openai.AsyncOpenAI) -> None:
    async with openai_client.responses.stream(
        model="demo/story", input="a story", max_output_tokens=30
    ) as stream:
        deltas = [
            event.delta async for event in stream if event.type == "response.output_text.delta"
        ]
        final = await stream.get_final_response()

    expected = "".join(story_tokens("a story", 30))
    assert "".join(deltas) == expected
    assert final.output_text == expected
    assert final.status == "completed"


async def test_max_output_tokens_is_incomplete(openai_client: openai.AsyncOpenAI) -> None:
    response = await openai_client.responses.create(
        model="demo/echo", input="one two three four five", max_output_tokens=2
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output_text == "one two"


async def test_function_tool_round_trip(openai_client: openai.AsyncOpenAI) -> None:
    first = await openai_client.responses.create(model="demo/tool", input="Paris", tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris", "days": 42}

    # The SDK docs' loop: the response's output items, then the tool's result.
    history: ResponseInputParam = [{"role": "user", "content": "Paris"}]
    history += first.output  # type: ignore[arg-type]  # output items are valid input items
    history.append(
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "Sunny, 24 C"}
    )
    second = await openai_client.responses.create(model="demo/tool", input=history, tools=[WEATHER])
    assert second.output_text == "Sunny, 24 C"


async def test_streamed_function_call_arguments(openai_client: openai.AsyncOpenAI) -> None:
    async with openai_client.responses.stream(
        model="demo/tool", input="Lyon", tools=[WEATHER]
    ) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()

    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    call = final.output[0]
    assert call.type == "function_call"
    assert deltas == done[0].arguments == call.arguments
    assert json.loads(call.arguments)["city"] == "Lyon"


async def test_previous_response_id_continues_the_conversation(
    openai_client: openai.AsyncOpenAI,
) -> None:
    first = await openai_client.responses.create(model="demo/tool", input="Oslo", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    second = await openai_client.responses.create(
        model="demo/tool",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "Snow"}],
        tools=[WEATHER],
    )
    assert second.output_text == "Snow"
    assert second.previous_response_id == first.id


async def test_previous_response_id_that_cannot_be_rebuilt_is_a_400(
    openai_client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        await openai_client.responses.create(
            model="demo/echo", input="hi", previous_response_id="resp_" + "0" * 32
        )
    assert unknown.value.body is not None
    assert unknown.value.param == "previous_response_id"

    running = await openai_client.responses.create(
        model="demo/story", input="long", max_output_tokens=5000, background=True
    )
    with pytest.raises(openai.BadRequestError, match="only a completed response"):
        await openai_client.responses.create(
            model="demo/echo", input="hi", previous_response_id=running.id
        )
    await openai_client.responses.cancel(running.id)


async def test_background_retrieve_resume_and_cancel(openai_client: openai.AsyncOpenAI) -> None:
    created = await openai_client.responses.create(
        model="demo/story", input="a long story", max_output_tokens=4000, background=True
    )
    assert created.status in ("queued", "in_progress")
    assert created.background is True

    stream = await openai_client.responses.retrieve(created.id, stream=True)
    first = []
    async for event in stream:
        first.append(event)
        if len(first) == 8:
            break
    await stream.close()

    resumed = await openai_client.responses.retrieve(
        created.id, stream=True, starting_after=first[4].sequence_number
    )
    again = []
    async for event in resumed:
        again.append(event)
        if len(again) == 3:
            break
    await resumed.close()
    # The same events, numbered the same, on a fresh connection.
    assert [e.model_dump() for e in again] == [e.model_dump() for e in first[5:8]]

    cancelled = await openai_client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    status = await openai_client.responses.retrieve(created.id)
    assert status.status == "cancelled"

    with pytest.raises(openai.NotFoundError):
        await openai_client.responses.retrieve("resp_" + "f" * 32)


async def test_cancelling_a_finished_response_is_a_conflict(
    openai_client: openai.AsyncOpenAI,
) -> None:
    done = await openai_client.responses.create(model="demo/echo", input="done")
    with pytest.raises(openai.ConflictError):
        await openai_client.responses.cancel(done.id)


async def test_finished_stream_resumed_at_its_end_is_204(
    openai_client: openai.AsyncOpenAI, client: httpx.AsyncClient
) -> None:
    done = await openai_client.responses.create(model="demo/echo", input="the end")
    events = await read_sse(client, f"/v1/responses/{done.id}", params={"stream": "true"})
    last = json.loads(events.events[-1].data)
    assert last["type"] == "response.completed"

    at_end = await read_sse(
        client,
        f"/v1/responses/{done.id}",
        params={"stream": "true", "starting_after": str(last["sequence_number"])},
    )
    assert at_end.status_code == 204

    past_end = await client.get(
        f"/v1/responses/{done.id}",
        params={"stream": "true", "starting_after": str(last["sequence_number"] + 1)},
    )
    assert past_end.status_code == 400


async def test_a_response_is_a_generation(
    openai_client: openai.AsyncOpenAI, client: httpx.AsyncClient
) -> None:
    done = await openai_client.responses.create(model="demo/echo", input=PROMPT)
    gen_id = gen_of(done.id)

    native = (await client.get(f"/v1/generations/{gen_id}")).json()
    assert native["status"] == "completed" and native["content"] == PROMPT

    as_responses = await read_sse(
        client, f"/v1/generations/{gen_id}/events", params={"format": "responses"}
    )
    direct = await read_sse(client, f"/v1/responses/{done.id}", params={"stream": "true"})
    assert [e.data for e in as_responses.events] == [e.data for e in direct.events]

    # Joining in the middle with Last-Event-ID: the rest, numbered as before.
    middle = as_responses.events[4]
    rest = await read_sse(
        client,
        f"/v1/generations/{gen_id}/events",
        params={"format": "responses"},
        headers={"Last-Event-ID": middle.id or ""},
    )
    numbers = [json.loads(e.data)["sequence_number"] for e in rest.events]
    assert numbers[0] == json.loads(middle.data)["sequence_number"] + 1
    assert [e.data for e in rest.events] == [e.data for e in as_responses.events[5:]]


async def test_background_resume_across_a_sigkilled_replica(
    stack: Stack, openai_client: openai.AsyncOpenAI
) -> None:
    prompt, tokens = "outlive a killed replica", 400
    replica = ApiProcess(stack.env).wait_ready()
    received, last = "", -1
    try:
        async with openai.AsyncOpenAI(
            base_url=f"{replica.base_url}/v1", api_key="unused", max_retries=0
        ) as doomed:
            created = await doomed.responses.create(
                model="demo/story", input=prompt, max_output_tokens=tokens, background=True
            )
            stream = await doomed.responses.retrieve(created.id, stream=True)
            with pytest.raises(openai.APIError):  # the connection dies with the process
                async for event in stream:
                    last = event.sequence_number
                    if event.type == "response.output_text.delta":
                        received += event.delta
                        if replica.process.poll() is None and len(received) > 40:
                            replica.kill()  # SIGKILL: no goodbye on the wire
    except httpx.HTTPError:
        pass
    finally:
        await asyncio.to_thread(replica.stop)

    assert received and last >= 0
    rest = await openai_client.responses.retrieve(created.id, stream=True, starting_after=last)
    events = [event async for event in rest]
    assert events[0].sequence_number == last + 1
    received += "".join(e.delta for e in events if e.type == "response.output_text.delta")
    expected = "".join(story_tokens(prompt, tokens))
    assert received == expected
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == expected
