"""`GenerationRequest.to_stored_json` accepts only what `from_stored_json` reads back."""

from __future__ import annotations

import pytest

from services.errors import InvalidRequest
from services.generation import FunctionSpec, GenerationRequest, Message, Tool
from tests.support.json_bodies import nested_object


def request_with_parameters(levels: int) -> GenerationRequest:
    """Built in Python, past every HTTP check, as a future door might build one."""
    tool = Tool(function=FunctionSpec(name="f", parameters=nested_object(levels)))
    return GenerationRequest(
        model="demo/echo", messages=[Message(role="user", content="hi")], tools=[tool]
    )


def test_a_readable_request_round_trips() -> None:
    request = request_with_parameters(120)
    assert GenerationRequest.from_stored_json(request.to_stored_json()) == request


@pytest.mark.parametrize("levels", [199, 254, 400])
def test_a_request_the_worker_could_not_read_is_refused(levels: int) -> None:
    with pytest.raises(InvalidRequest, match="cannot be stored in a form a worker reads back"):
        request_with_parameters(levels).to_stored_json()


def test_a_lone_surrogate_is_refused_not_crashed_on() -> None:
    request = GenerationRequest(
        model="demo/echo", messages=[Message(role="user", content="a\ud800")]
    )
    with pytest.raises(InvalidRequest, match="cannot be stored"):
        request.to_stored_json()
