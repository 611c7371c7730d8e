"""Test helpers: a real ``python -m service serve`` process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM the server and return its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    """Poll /readyz until it answers 200; fail with the server's log if it dies or times out."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(
                    f"server exited with {process.returncode}:\n{log_path.read_text()}"
                )
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            # Polling a condition with a bounded deadline, not sleeping in place of a signal.
            time.sleep(0.1)
    raise AssertionError(f"server not ready after {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()}")


@contextmanager
def serve_process(
    tmp_path: Path, *args: str, env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    """Run ``python -m service serve --port <free> *args`` until the block ends."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_ready(server.url, process, log_path)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def require_tool(name: str) -> str:
    """The path of ``name``; fails (never skips) when it is missing, saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed; run scripts/install-tools (as root)")
    return path


@dataclass(frozen=True)
class Reply:
    """One request of a load run: when it was sent, and what came back (or the error)."""

    sent_at: float
    status: int | None
    model_version: str | None = None
    error: str | None = None
    retry_after: str | None = None


async def load(
    url: str,
    *,
    connections: int,
    duration_s: float,
    max_requests: int,
    json_body: object,
    path: str = "/predict",
    stop: asyncio.Event | None = None,
    timeout_s: float = 30.0,
) -> list[Reply]:
    """Send requests over ``connections`` keep-alive connections until time, count or ``stop``.

    Bounded in count (``max_requests``) and time (``duration_s``); errors are recorded, not
    raised, so a test can assert on every reply.
    """
    deadline = time.monotonic() + duration_s
    replies: list[Reply] = []

    async def worker(client: httpx.AsyncClient) -> None:
        while (
            time.monotonic() < deadline
            and len(replies) < max_requests
            and not (stop is not None and stop.is_set())
        ):
            sent_at = time.monotonic()
            try:
                response = await client.post(path, json=json_body)
            except httpx.HTTPError as error:
                replies.append(Reply(sent_at, None, error=f"{type(error).__name__}: {error}"))
                continue
            replies.append(
                Reply(
                    sent_at,
                    response.status_code,
                    response.headers.get("X-Model-Version"),
                    retry_after=response.headers.get("Retry-After"),
                )
            )

    # A client per connection: httpcore's pool does work quadratic in its connections. They
    # share one SSL context, which httpx would otherwise build (slowly) per client.
    tls = ssl.create_default_context()
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [
        httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits, verify=tls)
        for _ in range(connections)
    ]
    try:
        await asyncio.gather(*(worker(client) for client in clients))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    return replies
