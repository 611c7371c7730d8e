"""Overload: far more connections than the queue holds; shed with 503, never drop or hang."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import load
from tests.helpers import percentile
from tests.helpers import serve_process

SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}
CONNECTIONS = 512
# p99 of the answered requests stays under this while 512 connections hammer a 64-row queue.
# On 2 cores shared with the load generator, the event loop parsing 512 connections' requests
# (most of them shed) dominates: measured 0.8-2.2 s here; the bound leaves room for a busy CI box.
P99_BOUND_S = 5.0


async def test_overload_sheds_with_503_and_stays_healthy(
    tmp_path: Path, store_root: Path, figures: dict[str, str]
) -> None:
    """512 connections on a 64-row queue: only 200s and 503s with Retry-After, bounded p99."""
    env = {
        "PREDICTION_MAX_QUEUE_ROWS": "64",
        "PREDICTION_MAX_BATCH_ROWS": "64",
        "PREDICTION_MAX_REQUEST_ROWS": "64",
        "PREDICTION_ACCESS_LOG": "false",
        "PREDICTION_RELOAD_INTERVAL_S": "0",
    }
    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
    ) as server:
        replies = await load(
            server.url,
            connections=CONNECTIONS,
            duration_s=8,
            max_requests=200_000,
            json_body=SETOSA,
            timeout_s=30,
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            ready = await client.get("/readyz")
            after = await client.post("/predict", json=SETOSA)

    statuses = {r.status for r in replies}
    ok_latencies = [r.latency_s for r in replies if r.status == 200]
    figures["overload"] = (
        f"{CONNECTIONS} connections, {len(replies)} requests in 8 s: "
        f"{len(ok_latencies)} x 200, {len(replies) - len(ok_latencies)} x 503, "
        f"p99 of 200s {percentile(ok_latencies, 0.99) * 1000:.0f} ms, "
        f"{sum(r.error is not None for r in replies)} connection errors"
    )
    assert [] == [r.error for r in replies if r.error is not None]
    assert {200, 503} == statuses, "the load should both be served and shed"
    assert all(r.retry_after == "1" for r in replies if r.status == 503)
    assert percentile(ok_latencies, 0.99) <= P99_BOUND_S
    assert (200, 200, {"prediction": [0]}) == (ready.status_code, after.status_code, after.json())
