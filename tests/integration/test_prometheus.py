"""The metrics as Prometheus itself sees them: promtool's linter, a real scrape, several workers."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx

from bench.servers import free_port
from tests.helpers import require_tool
from tests.helpers import serve_process

SETOSA = [5.1, 3.5, 1.4, 0.2]
SCRAPE_DEADLINE_S = 90.0


def send_traffic(url: str, requests: int = 5) -> None:
    """A few requests of each outcome that needs no special model: ok, invalid, 404."""
    with httpx.Client(timeout=10) as client:
        for _ in range(requests):
            assert 200 == client.post(f"{url}/predict", json={"features": [SETOSA]}).status_code
        assert 400 == client.post(f"{url}/predict", json={"features": [[1]]}).status_code
        assert 404 == client.get(f"{url}/nope").status_code


def test_promtool_accepts_metrics(tmp_path: Path, store_root: Path) -> None:
    """promtool check metrics finds nothing to complain about in the served /metrics."""
    promtool = require_tool("promtool")
    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris"
    ) as server:
        send_traffic(server.url)
        text = httpx.get(f"{server.url}/metrics", timeout=10).text

    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (0, "", "") == (result.returncode, result.stdout, result.stderr)


def query(client: httpx.Client, prometheus_url: str, promql: str) -> list[dict[str, object]]:
    response = client.get(f"{prometheus_url}/api/v1/query", params={"query": promql})
    response.raise_for_status()
    result: list[dict[str, object]] = response.json()["data"]["result"]
    return result


def test_real_prometheus_scrapes_every_series(tmp_path: Path, store_root: Path) -> None:
    """A real Prometheus on 127.0.0.1 scrapes the server: up == 1 and every series exists."""
    prometheus = require_tool("prometheus")
    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris"
    ) as server:
        send_traffic(server.url)
        port = free_port()
        config = tmp_path / "prometheus.yml"
        target = server.url.removeprefix("http://")
        config.write_text(
            "global:\n  scrape_interval: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: prediction\n    static_configs:\n      - targets: ['{target}']\n"
        )
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            names = wait_for_series(f"http://127.0.0.1:{port}", process)
        finally:
            process.terminate()
            process.wait(30)
            log.close()

    expected = {
        "prediction_http_requests_total",
        "prediction_http_request_duration_seconds_bucket",
        "prediction_requests_total",
        "prediction_batch_rows_bucket",
        "prediction_queue_wait_seconds_bucket",
        "prediction_model_seconds_bucket",
        "prediction_queue_rows",
        "prediction_model_info",
        "prediction_model_loads_total",
    }
    assert expected <= names


def wait_for_series(prometheus_url: str, process: subprocess.Popen[bytes]) -> set[str]:
    """Poll Prometheus's API until the target is up and has prediction series; their names."""
    deadline = time.monotonic() + SCRAPE_DEADLINE_S
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            assert process.poll() is None, "prometheus exited"
            try:
                up = query(client, prometheus_url, 'up{job="prediction"}')
                series = query(client, prometheus_url, '{__name__=~"prediction_.+"}')
            except httpx.HTTPError:
                up, series = [], []
            if up and up[0]["value"][1] == "1" and series:  # type: ignore[index]
                return {s["metric"]["__name__"] for s in series}  # type: ignore[index]
            # Polling a bounded condition: Prometheus scrapes on its own schedule.
            time.sleep(0.5)
    raise AssertionError(f"Prometheus saw no prediction series within {SCRAPE_DEADLINE_S} s")


def test_two_workers_counted_in_one_scrape(tmp_path: Path, store_root: Path) -> None:
    """With --workers 2, requests answered by both workers are all counted in one scrape."""
    sent = 0
    with serve_process(
        tmp_path,
        "--model-store",
        str(store_root),
        "--default-model",
        "iris",
        "--workers",
        "2",
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
    ) as server:
        # Fresh connections until both workers have answered (the kernel picks the acceptor).
        while sent < 400 and len(serving_pids(server.log())) < 2:
            for _ in range(20):
                with httpx.Client(timeout=10) as client:
                    response = client.post(f"{server.url}/predict", json={"features": [SETOSA]})
                    assert 200 == response.status_code
                sent += 1
        text = httpx.get(f"{server.url}/metrics", timeout=10).text
        pids = serving_pids(server.log())

    counted = sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prediction_requests_total{") and 'outcome="ok"' in line
    )
    assert 2 == len(pids), "both workers should have answered some requests"
    assert sent == counted


def serving_pids(log: str) -> set[int]:
    pids = set()
    for line in log.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("logger") == "service.access" and entry.get("route") == "/predict":
                pids.add(entry["pid"])
    return pids
