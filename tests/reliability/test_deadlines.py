"""Deadlines: requests whose deadline passes while queued get 504 and cost no model time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.helpers import serve_process


def calls(open_dir: Path) -> list[str]:
    path = open_dir / "calls.txt"
    return path.read_text().split() if path.exists() else []


async def test_expired_requests_never_reach_the_model(
    tmp_path: Path, open_dir: Path, fault_store: Path
) -> None:
    """With the model busy, requests with a 1 ms deadline get 504 and never reach the model."""
    env = {"PREDICTION_RELOAD_INTERVAL_S": "0"}
    with serve_process(tmp_path, "--model-store", str(fault_store), env=env) as server:
        warmed = calls(open_dir)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            busy = asyncio.create_task(
                client.post("/predict?model=counting", json={"features": [[1, 2]]})
            )
            deadline = time.monotonic() + 20
            while len(calls(open_dir)) == len(warmed):
                assert time.monotonic() < deadline, "the first request never reached the model"
                # Polling the model's call log, which the server writes from another process.
                await asyncio.sleep(0.01)
            late = await asyncio.gather(
                *(
                    client.post(
                        "/predict?model=counting",
                        json={"features": [[3, 4]] * 3},
                        headers={"X-Request-Timeout-Ms": "1"},
                    )
                    for _ in range(10)
                )
            )
            first = await busy

    assert 200 == first.status_code
    assert [504] * 10 == [r.status_code for r in late]
    assert all("deadline" in r.json()["error"] for r in late)
    assert [*warmed, "1"] == calls(open_dir)
