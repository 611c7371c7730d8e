"""Soak: 50 000 requests at 64 connections with zero errors and no memory growth."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import load
from tests.helpers import rss_bytes
from tests.helpers import serve_process

SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}
WARM_UP_REQUESTS = 5_000
SOAK_REQUESTS = 50_000


async def test_soak_zero_errors_flat_memory(
    tmp_path: Path, store_root: Path, figures: dict[str, str]
) -> None:
    """After a 5 000-request warm-up, 50 000 more leave RSS within 10 % and fail none."""
    env = {"PREDICTION_RELOAD_INTERVAL_S": "0", "PREDICTION_ACCESS_LOG": "false"}
    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
    ) as server:
        warm = await load(
            server.url,
            connections=64,
            duration_s=120,
            max_requests=WARM_UP_REQUESTS,
            json_body=SETOSA,
        )
        rss_warm = rss_bytes(server)
        soak = await load(
            server.url,
            connections=64,
            duration_s=180,
            max_requests=SOAK_REQUESTS,
            json_body=SETOSA,
        )
        rss_after = rss_bytes(server)

    failed = [r for r in [*warm, *soak] if r.status != 200]
    figures["soak"] = (
        f"{len(soak)} requests at 64 connections: {len(failed)} failed, "
        f"RSS {rss_warm / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB"
    )
    assert SOAK_REQUESTS <= len(soak)
    assert [] == failed
    assert rss_after <= rss_warm * 1.10
