"""Slow and broken clients: stalled, half-sent, vanished and idle connections block no one."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import ServerProcess
from tests.helpers import rss_bytes
from tests.helpers import serve_process

SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}
IDLE_CONNECTIONS = 300


@pytest.fixture(name="server")
def _server(tmp_path: Path, fault_store: Path) -> Iterator[ServerProcess]:
    # A short keep-alive: Hypercorn frees a closed connection's tasks when it expires.
    env = {
        "PREDICTION_RELOAD_INTERVAL_S": "0",
        "PREDICTION_ACCESS_LOG": "false",
        "PREDICTION_KEEP_ALIVE_S": "1",
    }
    with serve_process(
        tmp_path, "--model-store", str(fault_store), "--default-model", "iris", env=env
    ) as server:
        yield server


def connect(server: ServerProcess) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def request_head(path: str, content_length: int) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


@pytest.fixture(name="client")
def _client(server: ServerProcess) -> Iterator[httpx.Client]:
    """One keep-alive connection for every check, so the checks add no connections of their own."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def scrape(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def wait_until(condition: object, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        # Polling the server's own gauges: it notices closed sockets on its own schedule.
        time.sleep(0.05)


def predict_ok(client: httpx.Client) -> bool:
    response = client.post("/predict", json=SETOSA, timeout=5)
    return (200, {"prediction": [0]}) == (response.status_code, response.json())


def warm_up(client: httpx.Client) -> None:
    for _ in range(200):
        assert 200 == client.post("/predict", json=SETOSA).status_code


def test_stalled_and_half_sent_clients_block_no_one(
    server: ServerProcess, client: httpx.Client, figures: dict[str, str]
) -> None:
    """Clients that stall after headers or vanish mid-body leave others served, and no leaks."""
    warm_up(client)
    tasks_before = scrape(client, "prediction_event_loop_tasks")
    rss_before = rss_bytes(server)

    stalled = [connect(server) for _ in range(20)]
    for sock in stalled:
        sock.sendall(request_head("/predict", 40))  # and never the body
    for _ in range(20):
        with connect(server) as half:
            half.sendall(request_head("/predict", 40) + b'{"features": [[5.1')
    served_meanwhile = all(predict_ok(client) for _ in range(20))
    for sock in stalled:
        sock.close()

    wait_until(lambda: scrape(client, "prediction_event_loop_tasks") <= tasks_before)
    rss_after = rss_bytes(server)
    figures["broken clients"] = (
        f"20 stalled + 20 half-sent: tasks {tasks_before:.0f} -> "
        f"{scrape(client, 'prediction_event_loop_tasks'):.0f}, "
        f"RSS {rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB"
    )
    assert served_meanwhile
    assert rss_after <= rss_before * 1.10


async def test_client_gone_while_queued_is_dropped(
    server: ServerProcess, client: httpx.Client, open_dir: Path
) -> None:
    """A client that disconnects while its request is queued is dropped: the model never sees it."""
    calls = open_dir / "calls.txt"
    warmed = calls.read_text().split() if calls.exists() else []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as async_client:
        busy = asyncio.create_task(
            async_client.post("/predict?model=counting", json={"features": [[1, 2]]})
        )
        await asyncio.to_thread(wait_until, lambda: len(calls.read_text().split()) > len(warmed))
        body = b'{"features": [[3, 4], [5, 6], [7, 8]]}'
        gone = connect(server)
        gone.sendall(request_head("/predict?model=counting", len(body)) + body)
        await asyncio.to_thread(
            wait_until, lambda: 3 == scrape(client, 'prediction_queue_rows{model="counting"}')
        )
        gone.close()
        await asyncio.to_thread(
            wait_until, lambda: 0 == scrape(client, 'prediction_queue_rows{model="counting"}')
        )
        first = await busy

    assert 200 == first.status_code
    assert [*warmed, "1"] == calls.read_text().split()


def test_idle_keep_alive_connections_block_no_one(
    server: ServerProcess, client: httpx.Client, figures: dict[str, str]
) -> None:
    """Hundreds of idle keep-alive connections leave others served; closing them frees tasks."""
    warm_up(client)
    tasks_before = scrape(client, "prediction_event_loop_tasks")
    body = b'{"features": [[5.1, 3.5, 1.4, 0.2]]}'
    idle = []
    for _ in range(IDLE_CONNECTIONS):
        sock = connect(server)
        sock.sendall(request_head("/predict", len(body)) + body)
        idle.append(sock)
    for sock in idle:
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    tasks_with_idle = scrape(client, "prediction_event_loop_tasks")
    served_meanwhile = all(predict_ok(client) for _ in range(20))
    for sock in idle:
        sock.close()

    wait_until(lambda: scrape(client, "prediction_event_loop_tasks") <= tasks_before)
    figures["idle connections"] = (
        f"{IDLE_CONNECTIONS} idle keep-alive: tasks {tasks_before:.0f} -> "
        f"{tasks_with_idle:.0f} -> back to {scrape(client, 'prediction_event_loop_tasks'):.0f}"
    )
    assert served_meanwhile
    assert tasks_with_idle >= tasks_before + IDLE_CONNECTIONS
