"""Helpers of the client tests: create a generation, wait for its text, restart an API."""

from __future__ import annotations

import time

import httpx

from tests.faults.support import PROMPT, Processes
from tests.support.processes import ApiProcess

MESSAGES = [{"role": "user", "content": PROMPT}]


def restart_on_same_port(procs: Processes, api: ApiProcess) -> ApiProcess:
    """A new API process where `api` was (its clients keep their URL), ready."""
    again = ApiProcess(procs.env, port=api.port)
    procs.started.append(again)
    return again.wait_ready()


def create(base_url: str, max_tokens: int) -> str:
    body = {"model": "demo/story", "messages": MESSAGES, "max_tokens": max_tokens}
    answer = httpx.post(f"{base_url}/v1/generations", json=body, timeout=30)
    assert answer.status_code == 202, answer.text
    gen_id: str = answer.json()["id"]
    return gen_id


def wait_for_text(base_url: str, gen_id: str) -> None:
    deadline = time.monotonic() + 30
    while not httpx.get(f"{base_url}/v1/generations/{gen_id}", timeout=10).json()["content"]:
        assert time.monotonic() < deadline, "no text after 30 s"
        time.sleep(0.05)
