"""`tokenrelay tail ID` as a user runs it: a real process, against real API processes."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx

from tests.clients.support import create, restart_on_same_port, wait_for_text
from tests.faults.support import Processes, expected_story
from tests.support.processes import ROOT


def tail(base_url: str, gen_id: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "tail", gen_id, "--url", base_url],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_tail_prints_the_exact_text_through_an_api_sigkill_and_its_exit_codes(
    procs: Processes,
) -> None:
    _, api = procs.ready(workers=1)
    gen_id = create(api.base_url, 160)
    wait_for_text(api.base_url, gen_id)
    follower = tail(api.base_url, gen_id)
    time.sleep(0.5)  # let it connect and print some text
    api.kill()
    api = restart_on_same_port(procs, api)
    out, err = follower.communicate(timeout=90)
    assert follower.returncode == 0, err
    assert out == expected_story(160) + "\n"
    assert "reconnected" in err

    gen_id = create(api.base_url, 4000)
    wait_for_text(api.base_url, gen_id)
    assert httpx.post(f"{api.base_url}/v1/generations/{gen_id}/cancel").status_code == 202
    cancelled = tail(api.base_url, gen_id)
    _, err = cancelled.communicate(timeout=60)
    assert cancelled.returncode == 3 and "cancelled" in err
    missing = tail(api.base_url, "gen_doesnotexist")
    _, err = missing.communicate(timeout=60)
    assert missing.returncode == 1 and "404 not_found_error" in err
