"""The benchmarks run in CI in their quick mode: they must keep working.

No figure is asserted (speed is measured in bench/, never judged by a test);
what is checked is that both systems were measured and every table was printed,
so a benchmark that silently broke cannot go unnoticed until the next full run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_quick_benchmark_runs_and_reports_both_systems(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    finished = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert "| hub |" in finished.stdout and "| naive |" in finished.stdout
    figures = json.loads(out.read_text())
    assert figures, "the benchmark saved its figures"


@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    ("module", "row"),
    [
        ("bench.worker_capacity", "| 50 | 50 |"),  # 50 generations created, 50 completed
        ("bench.delivery", "| 100 | 10 |"),  # 100 viewers at 10 events/s, reported
        ("bench.idle_memory", "| 300 (errors 0) |"),
        ("bench.ttft_vs_direct", "added by the relay at p50:"),
        ("bench.provider_request", "| the providers' transport (`UpstreamHttp`) |"),
    ],
)
def test_quick_hub_and_worker_benches_run_and_report(module: str, row: str) -> None:
    finished = subprocess.run(
        [sys.executable, "-m", module, "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    assert row in finished.stdout, finished.stdout
