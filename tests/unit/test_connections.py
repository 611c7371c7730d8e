"""The connection server: one write per loop iteration, keep-alive without a task per request."""

from __future__ import annotations

import asyncio
import importlib.metadata
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import hypercorn.asyncio.run as hypercorn_run
import pytest
from hypercorn.asyncio import serve
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import WorkerContext
from hypercorn.config import Config
from hypercorn.events import RawData

from service import connections
from service.connections import WRITE_NOW_BYTES
from service.connections import LeanTCPServer

# Long enough that no test meets it unless the test is about it.
FOREVER_S = 3600.0
# A bound on every wait, so a broken server fails a test instead of hanging it.
GUARD_S = 30.0


class RecordingWriter:
    """A StreamWriter that records what was written and closed, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    async def drain(self) -> None:
        pass

    def write_eof(self) -> None:
        self.calls.append(("write_eof", b""))

    def close(self) -> None:
        self.calls.append(("close", b""))

    async def wait_closed(self) -> None:
        pass


def lean_server(writer: RecordingWriter) -> LeanTCPServer:
    config = Config()
    config.keep_alive_timeout = FOREVER_S
    return LeanTCPServer(
        None,
        asyncio.get_running_loop(),
        config,
        WorkerContext(None),
        {},
        asyncio.StreamReader(),
        writer,
    )


async def next_iteration() -> None:
    """Return after the callbacks the loop had scheduled before this call have run."""
    done = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(done.set_result, None)
    await done


async def test_data_of_one_iteration_goes_out_in_one_write() -> None:
    """A response's head, body and end, sent in one iteration, reach the socket as one write."""
    writer = RecordingWriter()
    server = lean_server(writer)

    for data in (b"HTTP/1.1 200 \r\n\r\n", b"body", b""):
        await server.protocol_send(RawData(data=data))
    written_before = list(writer.calls)
    await next_iteration()

    assert ([], [("write", b"HTTP/1.1 200 \r\n\r\nbody")]) == (written_before, writer.calls)


async def test_large_data_is_written_at_once() -> None:
    """From WRITE_NOW_BYTES on, waiting data is written before the send returns."""
    writer = RecordingWriter()
    server = lean_server(writer)
    head, body = b"HTTP/1.1 200 \r\n\r\n", b"x" * WRITE_NOW_BYTES

    await server.protocol_send(RawData(data=head))
    await server.protocol_send(RawData(data=body))

    assert [("write", head + body)] == writer.calls


async def test_closing_writes_waiting_data_first() -> None:
    """Data sent just before the connection closes is written before the close."""
    writer = RecordingWriter()
    server = lean_server(writer)

    await server.protocol_send(RawData(data=b"last words"))
    await server._close()
    await next_iteration()

    assert ["write", "write_eof", "close"] == [call for call, _ in writer.calls]


async def hello(scope: Any, receive: Any, send: Any) -> None:
    """Answers every HTTP request with 200 and ``hello``, after ``?wait`` seconds if given."""
    if scope["type"] != "http":
        return
    if scope["query_string"]:
        await asyncio.sleep(float(scope["query_string"].decode()))
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


@asynccontextmanager
async def serving(
    monkeypatch: pytest.MonkeyPatch, keep_alive_s: float
) -> AsyncIterator[tuple[int, asyncio.Event, asyncio.Task[None]]]:
    """Hypercorn serving ``hello`` on 127.0.0.1 with LeanTCPServer: its port, stop and task."""
    monkeypatch.setattr(hypercorn_run, "TCPServer", LeanTCPServer)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.keep_alive_timeout = keep_alive_s
    config.graceful_timeout = GUARD_S
    config.accesslog = None
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hello, config, shutdown_trigger=stop.wait))
    try:
        yield port, stop, task
    finally:
        stop.set()
        await asyncio.wait_for(task, GUARD_S)


async def ask(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: str = "/"
) -> bytes:
    writer.write(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), GUARD_S)
    body = await asyncio.wait_for(reader.readexactly(5), GUARD_S)
    return head.split(b"\r\n", 1)[0] + b" " + body


async def test_idle_connection_is_closed_after_the_keep_alive_time_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection with no request for the keep-alive time-out is closed by the server."""
    async with serving(monkeypatch, keep_alive_s=0.2) as (port, _, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = [await ask(reader, writer), await ask(reader, writer)]
        closed = await asyncio.wait_for(reader.read(), GUARD_S)
        writer.close()

    assert ([b"HTTP/1.1 200  hello"] * 2, b"") == (answers, closed)


async def test_a_request_longer_than_the_keep_alive_time_out_is_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The keep-alive time-out counts idle time only: a slow request and the next one answer."""
    async with serving(monkeypatch, keep_alive_s=0.2) as (port, _, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = [await ask(reader, writer, "/?0.6"), await ask(reader, writer)]
        writer.close()

    assert [b"HTTP/1.1 200  hello"] * 2 == answers


async def test_shutdown_closes_idle_connections_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """At shutdown an idle keep-alive connection is closed without waiting for its time-out."""
    async with serving(monkeypatch, keep_alive_s=FOREVER_S) as (port, stop, task):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answer = await ask(reader, writer)
        stop.set()
        closed = await asyncio.wait_for(reader.read(), GUARD_S)
        await asyncio.wait_for(asyncio.shield(task), GUARD_S)
        writer.close()

    assert (b"HTTP/1.1 200  hello", b"") == (answer, closed)


def test_install_serves_connections_with_the_lean_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a tested Hypercorn release, Hypercorn's workers use LeanTCPServer."""
    monkeypatch.setattr(hypercorn_run, "TCPServer", TCPServer)

    assert (True, LeanTCPServer) == (connections.install(), vars(hypercorn_run)["TCPServer"])


def test_install_leaves_another_release_its_own_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a Hypercorn release it was not tested with, Hypercorn's own server stays."""
    monkeypatch.setattr(hypercorn_run, "TCPServer", TCPServer)
    monkeypatch.setattr(importlib.metadata, "version", lambda _: "0.99.0")

    assert (False, TCPServer) == (connections.install(), vars(hypercorn_run)["TCPServer"])
