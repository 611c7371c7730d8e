"""Model faults: a raising, a row-miscounting and a hanging model fail only their own requests."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ServerProcess
from tests.helpers import serve_process

SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.fixture(name="server")
def _server(tmp_path: Path, fault_store: Path) -> Iterator[ServerProcess]:
    # A wait lets concurrent requests share batches, so failures must be isolated inside one.
    env = {"PREDICTION_MAX_WAIT_MS": "20", "PREDICTION_RELOAD_INTERVAL_S": "0"}
    with serve_process(tmp_path, "--model-store", str(fault_store), env=env) as server:
        yield server


async def test_raising_model_fails_only_offending_requests(server: ServerProcess) -> None:
    """Among concurrent requests, only those the model rejects get 400; the rest are correct."""
    rows = [[-1.0 if i % 5 == 0 else float(i), 1.0] for i in range(25)]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        replies = await asyncio.gather(
            *(client.post("/predict?model=failing", json={"features": [row]}) for row in rows)
        )

    for row, reply in zip(rows, replies, strict=True):
        if row[0] < 0:
            assert 400 == reply.status_code
            assert "negative first feature" in reply.json()["error"]
        else:
            assert (200, {"prediction": [row[0] + 1.0]}) == (reply.status_code, reply.json())


def test_wrong_row_count_is_a_500_and_nothing_else_breaks(server: ServerProcess) -> None:
    """A model answering the wrong number of rows gets 500 with a generic error; others serve."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        broken = client.post("/predict?model=wrongrows", json={"features": [[1, 2], [3, 4]]})
        fine = client.post("/predict?model=iris", json=SETOSA)

    assert 500 == broken.status_code
    assert "Traceback" not in broken.text
    assert (200, {"prediction": [0]}) == (fine.status_code, fine.json())


async def test_hanging_model_times_out_and_recovers(server: ServerProcess) -> None:
    """A hung batch answers 504 at its deadline; later requests to it and to others are served."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        hung = await client.post(
            "/predict?model=hanging",
            json={"features": [[999, 1]]},
            headers={"X-Request-Timeout-Ms": "300"},
        )
        after = await client.post("/predict?model=hanging", json={"features": [[1, 2]]})
        other = await client.post("/predict?model=iris", json=SETOSA)

    assert 504 == hung.status_code
    assert (200, {"prediction": [3.0]}) == (after.status_code, after.json())
    assert 200 == other.status_code
