"""``python -m bench`` end to end, tiny settings: real servers on 127.0.0.1, real wrk."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from bench import CHECKOUT
from tests.helpers import require_tool

pytestmark = pytest.mark.integration

# Bounds the whole run: ~3 server start-ups and 6 one-second wrk runs take ~20 s.
BENCH_TIMEOUT_S = 90.0


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        capture_output=True,
        text=True,
        timeout=BENCH_TIMEOUT_S,
        check=False,
        cwd=CHECKOUT,
    )


def test_bench_measures_the_service_and_writes_the_report_and_plot(tmp_path: Path) -> None:
    """A one-round run prints CPU per request, the micro-benchmark and targets; writes all files."""
    require_tool("wrk")
    results = tmp_path / "results"

    completed = run_bench(
        "--duration=1",
        "--warmup=0",
        "--rounds=1",
        "--connections=1,4",
        "--models=logreg",
        "--servers=service,service-3.13,service-traced,bare,bare-1",
        "--py313=no-such-python-3.13",
        "--bulk-rows=16",
        "--bulk-connections=2",
        "--micro-seconds=0.01",
        f"--results-dir={results}",
    )

    assert completed.returncode == 0, completed.stderr + completed.stdout
    out = completed.stdout
    assert "skipping (a) service, Python 3.13: no-such-python-3.13 is not on the PATH" in out
    assert "LogisticRegression, 1 connection: p50 of (a) - p50 of (d)" in out
    assert "CPU us/req" in out
    assert "In-process predict, median us per call" in out
    assert "Tracing on costs LogisticRegression at 1 connection" in out
    assert "Tracing off costs" in out
    report = (results / "bench-report.md").read_text()
    for heading in ("## Targets", "## Model calls in-process", "## Tracing"):
        assert heading in report
    for label in ("(a) service", "(d) bare Quart+Hypercorn", "(d) bare Quart+Hypercorn, 1 process"):
        assert f"| {label} |" in report
    # The default worker count (2), for (a) and (d) alike.
    assert "(d) bare Quart+Hypercorn: 2 worker(s) (as (a))" in report
    png = (results / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    payload = orjson.loads((results / "bench-results.json").read_bytes())
    assert {p["server"] for p in payload["points"]} == {
        "service",
        "service-traced",
        "bare",
        "bare-1",
    }
    # The traced row measures the LogisticRegression at 1 connection only: 4 is not one of its
    # connection counts, and it has no bulk case.
    traced = [p for p in payload["points"] if p["server"] == "service-traced"]
    assert [(p["model"], p["connections"], p["rows"]) for p in traced] == [("logreg", 1, 1)]
    assert traced[0]["result"]["non_2xx"] == 0
    # Its spans reached the bench's receiver.
    assert payload["tracing_exports"]["spans"] > 0
    assert payload["tracing"]["model"] == "logreg"
    assert payload["tracing"]["off_s"] > 0
    assert [c["connections"] for c in payload["tracing_comparisons"]] == [1]
    service_points = [p for p in payload["points"] if p["server"] == "service"]
    # Two connection counts plus the bulk case, each answered without an error.
    assert len(service_points) == 3
    for measured in service_points:
        assert measured["result"]["requests"] > 0
        assert measured["result"]["non_2xx"] == 0
        assert measured["mean_batch_rows"] is not None
    # Every server the bench started had its process tree's CPU read.
    assert all(p["cpu_us_per_request"] > 0 for p in payload["points"])
    assert [(m["engine"], m["batch_rows"]) for m in payload["micro"]] == [
        ("scikit-learn", 1),
        ("scikit-learn", 32),
        ("scikit-learn", 256),
        # The tree engine declines a LogisticRegression: listed, not timed.
        ("exact tree engine", 1),
        ("exact tree engine", 32),
        ("exact tree engine", 256),
        ("exact linear engine", 1),
        ("exact linear engine", 32),
        ("exact linear engine", 256),
    ]


def test_bench_rejects_an_unknown_server_in_one_line() -> None:
    """A bad --servers value exits 2 with one error line naming the choices, starting nothing."""
    completed = run_bench("--servers=service,nginx")

    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        "error: --servers takes a comma-separated list of service, service-3.13, "
        "service-traced, flask, flask-2x8, bare, bare-1, got 'service,nginx'"
    ]
