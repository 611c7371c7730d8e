"""``python -m service bench`` end to end, tiny settings: real servers on 127.0.0.1, real wrk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.helpers import require_tool

pytestmark = pytest.mark.integration

# Bounds the whole run: ~2 server start-ups and 6 one-second wrk runs take ~15 s.
BENCH_TIMEOUT_S = 60.0


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service", "bench", *args],
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
        check=False,
    )


def test_bench_measures_the_service_and_writes_the_report_and_plot(tmp_path: Path) -> None:
    """A one-round run against the service and the bare app prints targets and writes all files."""
    require_tool("wrk")
    results = tmp_path / "results"

    completed = run_bench(
        "--duration=1",
        "--warmup=0",
        "--rounds=1",
        "--connections=1,4",
        "--models=logreg",
        "--servers=service,bare",
        "--bulk-rows=16",
        "--bulk-connections=2",
        f"--results-dir={results}",
    )

    assert completed.returncode == 0, completed.stderr + completed.stdout
    assert "LogisticRegression, 1 connection: p50 of (a) - p50 of (d)" in completed.stdout
    report = (results / "bench-report.md").read_text()
    assert "## Targets" in report
    assert "(a) service" in report
    assert "(d) bare Quart+Hypercorn" in report
    png = (results / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    payload = orjson.loads((results / "bench-results.json").read_bytes())
    service_points = [p for p in payload["points"] if p["server"] == "service"]
    # Two connection counts plus the bulk case, each answered without an error.
    assert len(service_points) == 3
    for measured in service_points:
        assert measured["result"]["requests"] > 0
        assert measured["result"]["non_2xx"] == 0
        assert measured["mean_batch_rows"] is not None


def test_bench_rejects_an_unknown_server_in_one_line() -> None:
    """A bad --servers value exits 2 with one error line naming the choices, starting nothing."""
    completed = run_bench("--servers=service,nginx")

    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: --servers takes a comma-separated list of service, flask, flask-2x8, bare, "
        "got 'service,nginx'"
    ]
