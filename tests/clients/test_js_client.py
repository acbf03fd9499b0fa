"""The JavaScript client under Node: its own test suite, then against real processes.

The suite (clients/js/test/*.test.js, Node's test runner) checks the parser and
the reconnect policy against a scripted server. Here a Node program follows real
generations with the client while an API replica is SIGKILLed or SIGTERMed and
started again, and while a worker dies and another takes over.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from typing import Any

from tests.clients.node import JS_CLIENT, node_binary
from tests.clients.support import create, restart_on_same_port, wait_for_text
from tests.faults.support import Processes, expected_story, runner_of


def test_the_node_test_suite_passes() -> None:
    node = node_binary()
    files = sorted(str(p) for p in (JS_CLIENT / "test").glob("*.test.js"))
    run = subprocess.run(
        [node, "--test", *files], cwd=JS_CLIENT, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "# fail 0" in run.stdout


class NodeFollower:
    """`node test/support/follow.mjs URL ID`: one JSON line per event, then the outcome."""

    def __init__(self, base_url: str, gen_id: str, api_key: str = "") -> None:
        script = str(JS_CLIENT / "test/support/follow.mjs")
        self.process = subprocess.Popen(
            [node_binary(), script, base_url, gen_id, *([api_key] if api_key else [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []

    def read_until(self, predicate: Any, timeout_s: float = 30) -> dict[str, Any]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(json.loads(line))
            if predicate(self.lines[-1]):
                return self.lines[-1]
        raise AssertionError(f"never saw it; got {self.lines[-5:]}, {self.stderr()}")

    def outcome(self) -> dict[str, Any]:
        final = self.read_until(lambda line: line.get("final"), timeout_s=90)
        self.process.wait(10)
        return final

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.stderr and self.process.poll() else ""


def test_node_client_resumes_exactly_through_api_sigkill_and_sigterm(procs: Processes) -> None:
    _, api = procs.ready(workers=1)
    for signum in (signal.SIGKILL, signal.SIGTERM):
        gen_id = create(api.base_url, 160)
        follower = NodeFollower(api.base_url, gen_id)
        follower.read_until(lambda line: line.get("length", 0) > 20)
        api.signal(signum)
        api.process.wait(timeout=20)
        api = restart_on_same_port(procs, api)
        final = follower.outcome()
        assert final["status"] == "completed", final
        assert final["text"] == expected_story(160)
        assert final["reconnects"] >= 1 and final["duplicates"] == 0


def test_node_client_sees_a_takeover_reset_and_ends_with_the_new_attempt(
    procs: Processes,
) -> None:
    workers, api = procs.ready(workers=2)
    gen_id = create(api.base_url, 120)
    wait_for_text(api.base_url, gen_id)
    follower = NodeFollower(api.base_url, gen_id)
    follower.read_until(lambda line: line.get("length", 0) > 10)
    runner_of(gen_id, workers).kill()
    reset = follower.read_until(lambda line: line.get("event") == "reset")
    assert reset["length"] == 0 and reset["attempt"] == 2
    final = follower.outcome()
    assert final["text"] == expected_story(120) and final["attempt"] == 2


def test_node_client_refusals_are_typed_and_not_retried(procs: Processes) -> None:
    procs.env["TOKENRELAY_API_KEYS"] = "k1"
    _, api = procs.ready(workers=1)
    wrong_key = NodeFollower(api.base_url, "gen_x", api_key="wrong").outcome()
    assert wrong_key["error"] == "AuthenticationError" and wrong_key["status"] == 401
    missing = NodeFollower(api.base_url, "gen_doesnotexist", api_key="k1").outcome()
    assert missing["error"] == "NotFoundError" and missing["type"] == "not_found_error"
    for outcome in (wrong_key, missing):
        assert outcome["reconnects"] == 0
    requests = [line for line in api.log().splitlines() if "GET /v1/generations/gen_" in line]
    assert len(requests) == 2, requests  # one each: no retry storm
