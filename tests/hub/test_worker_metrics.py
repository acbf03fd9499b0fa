"""The worker's metrics port: time to first token, gaps, tokens, provider errors."""

from __future__ import annotations

import httpx

from cli.redis_server import free_port
from tests.hub.conftest import ApiFactory
from tests.hub.support import metric_value
from tests.support.processes import WorkerProcess, stack_env
from tests.support.sse import read_sse


async def test_worker_exports_token_timing_and_provider_errors(
    start_api: ApiFactory, redis_url: str
) -> None:
    port = free_port()
    queue = f"tokenrelay:queue:metrics-{port}"  # a queue of its own: no other worker takes the jobs
    worker = WorkerProcess(
        stack_env(redis_url, TOKENRELAY_WORKER_METRICS_PORT=str(port), TOKENRELAY_QUEUE_NAME=queue)
    ).wait_ready()
    api = start_api(TOKENRELAY_QUEUE_NAME=queue)
    try:
        async with httpx.AsyncClient(base_url=api.base_url, timeout=60) as client:
            for model in ("demo/story", "demo/unknown"):
                created = await client.post(
                    "/v1/generations",
                    json={
                        "model": model,
                        "messages": [{"role": "user", "content": "hi"}],
                        "max_tokens": 20,
                    },
                )
                assert created.status_code == 202
                reading = await read_sse(client, created.json()["events_url"])
                assert reading.events[-1].event in ("done", "error")
            metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        worker.stop()
    assert metric_value(metrics, "tokenrelay_worker_time_to_first_token_seconds_count") == 1
    assert metric_value(metrics, "tokenrelay_worker_inter_token_seconds_count") == 19
    assert metric_value(metrics, 'tokenrelay_worker_tokens_published_total{provider="demo"}') == 20
    assert (
        metric_value(
            metrics,
            'tokenrelay_worker_provider_errors_total{provider="demo",type="invalid_request_error"}',
        )
        == 1
    )
    # The event loop's lag is reported (a small figure on an idle worker, never negative).
    assert "\ntokenrelay_worker_loop_lag_seconds " in metrics
    assert 0 <= metric_value(metrics, "tokenrelay_worker_loop_lag_seconds") < 5
