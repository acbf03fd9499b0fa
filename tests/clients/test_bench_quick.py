"""bench.clients in its quick mode: it must keep working (no figure is judged here)."""

from __future__ import annotations

import subprocess
import sys

from tests.support.processes import ROOT


def test_the_clients_benchmark_measures_every_client() -> None:
    finished = subprocess.run(
        [sys.executable, "-m", "bench.clients", "--events", "2000", "--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    for client in ("tokenrelay-client (Python, sync)", "httpx-sse 0.4"):
        assert f"| {client}" in finished.stdout
    if (ROOT / "bench/js/node_modules/eventsource").exists():
        assert "| tokenrelay-client (JS) |" in finished.stdout
        assert "| eventsource 3 (npm) |" in finished.stdout
