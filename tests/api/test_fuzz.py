"""A quick schemathesis pass over the live OpenAPI document: no 5xx, ever, and only
statuses the document promises for each operation.

It runs against real API processes on the session's Redis: the auth-off stack
(the `tokenrelay dev` default), and an API that requires a key, called with the
key and without. Valid data (what the schema allows) and invalid data (what it
forbids) are generated for every operation, a bounded number of examples each,
derandomized, so a run is quick and repeatable.

Streams: generated ids name no generation, so the SSE operations answer at once
(404, 400, 422). To fuzz a real stream, the events, status and cancel operations
also run against one finished generation: its stream replays and closes, so
every call ends. Live streams, resume and heartbeats have explicit tests of
their own (test_stream_basics.py, test_viewers_and_resume.py, tests/frontdoors).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis.core.result import Ok

from tests.api.test_bad_input import GOOD
from tests.conftest import Stack
from tests.support.processes import ApiProcess, stack_env
from tests.support.sse import read_sse

KEY = "sk-fuzz"
REQUEST_TIMEOUT_S = 30  # a call that gets no answer for this long is a hang


@dataclass
class FuzzReport:
    """What a pass saw: every (operation, status) and every answer that broke a promise."""

    seen: dict[tuple[str, int], int] = field(default_factory=dict)
    broken: list[str] = field(default_factory=list)

    def record(self, operation: str, status: int, documented: set[str], case: Any) -> None:
        self.seen[(operation, status)] = self.seen.get((operation, status), 0) + 1
        if status >= 500 or str(status) not in documented:
            self.broken.append(
                f"{operation} answered {status} (documented: {sorted(documented)}): "
                f"{case.as_curl_command()[:500]}"
            )


def fuzz(
    base_url: str,
    *,
    examples: int,
    headers: dict[str, str] | None = None,
    path_parameters: dict[str, str] | None = None,
    only: set[str] | None = None,
) -> FuzzReport:
    """Call every operation (or those in `only`) with generated valid and invalid data."""
    document = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    report = FuzzReport()
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an invalid operation: {result.err()}"
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        if only is not None and name not in only:
            continue
        documented = set(document["paths"][operation.path][operation.method.lower()]["responses"])
        # The document's own examples first: valid requests that run (demo models).
        for strategy in schema.get_strategies_from_examples(
            operation, headers=headers, path_parameters=path_parameters
        ):
            _run(strategy, 1, base_url, name, documented, report)
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(
                generation_mode=mode, headers=headers, path_parameters=path_parameters
            )
            # Unsatisfiable: nothing to make invalid (no parameters, no body).
            with contextlib.suppress(Unsatisfiable):
                _run(strategy, examples, base_url, name, documented, report)
    return report


def _run(
    strategy: SearchStrategy[Any],
    examples: int,
    base_url: str,
    name: str,
    documented: set[str],
    report: FuzzReport,
) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        response = case.call(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
        report.record(name, response.status_code, documented, case)

    call()


def statuses(report: FuzzReport, operation: str) -> set[int]:
    return {status for (name, status) in report.seen if name == operation}


@pytest.fixture(scope="module")
def keyed_api(stack: Stack) -> Iterator[ApiProcess]:
    api = ApiProcess(stack_env(stack.redis_url, TOKENRELAY_API_KEYS=KEY))
    try:
        yield api.wait_ready()
    finally:
        api.stop()


@pytest.mark.timeout(180)
def test_fuzz_with_auth_off(stack: Stack) -> None:
    report = fuzz(stack.base_url, examples=8)
    assert report.broken == []
    # The documented examples ran, and generated data reached the validation.
    assert statuses(report, "POST /v1/generations") >= {202, 422}
    assert statuses(report, "POST /v1/chat/completions") >= {200, 400}
    assert statuses(report, "POST /v1/messages") >= {200, 400}


@pytest.mark.timeout(180)
def test_fuzz_with_a_key(keyed_api: ApiProcess) -> None:
    report = fuzz(keyed_api.base_url, examples=5, headers={"Authorization": f"Bearer {KEY}"})
    assert report.broken == []
    assert statuses(report, "POST /v1/generations") >= {202}
    assert 401 not in statuses(report, "GET /v1/generations/{gen_id}")


@pytest.mark.timeout(180)
def test_fuzz_without_the_key_is_refused_everywhere(keyed_api: ApiProcess) -> None:
    """Nothing succeeds without the key. (A body that is not JSON, or too deep, is
    refused as such before the key is looked at: a 4xx either way.)"""
    report = fuzz(keyed_api.base_url, examples=2)
    assert report.broken == []
    for operation in ("POST /v1/generations", "GET /v1/generations", "POST /v1/messages"):
        seen = statuses(report, operation)
        assert 401 in seen and seen <= {400, 401, 413, 415}, (operation, seen)


@pytest.mark.timeout(180)
async def test_fuzz_a_finished_generations_stream(stack: Stack, client: httpx.AsyncClient) -> None:
    created = (await client.post("/v1/generations", json=GOOD)).json()
    assert (await read_sse(client, created["events_url"])).closed_by_server
    report = fuzz(
        stack.base_url,
        examples=10,
        path_parameters={"gen_id": created["id"]},
        only={
            "GET /v1/generations/{gen_id}/events",
            "GET /v1/generations/{gen_id}",
            "POST /v1/generations/{gen_id}/cancel",
        },
    )
    assert report.broken == []
    assert 200 in statuses(report, "GET /v1/generations/{gen_id}/events")
    assert statuses(report, "POST /v1/generations/{gen_id}/cancel") == {409}
