"""Test helpers: a real ``python -m service serve`` process on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import venv
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.servers import answers
from bench.servers import free_port
from bench.servers import wait_until

STARTUP_TIMEOUT_S = 60.0


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


def rss_bytes(server: ServerProcess) -> int:
    """The resident memory of ``server``'s process, from /proc."""
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {server.process.pid}")


@contextmanager
def serve_process(
    tmp_path: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    user: OtherUser | None = None,
) -> Iterator[ServerProcess]:
    """Run ``python -m service serve --port <free> *args`` until the block ends.

    With ``user``, the server runs as that user from the copies it can read (see
    :func:`readable_install`).
    """
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    # One worker unless the test asks for more: many tests count calls or tasks in one process.
    full_env = {**os.environ, "PREDICTION_WORKERS": "1", **(env or {})}
    serve = ["-m", "service", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *serve] if user is None else user.command(*serve),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env if user is None else user.environ(full_env),
            cwd=None if user is None else user.root,
        )
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log_path)
    try:
        wait_until(
            lambda: answers(f"{server.url}/readyz", timeout_s=2.0),
            what=f"server at {server.url}",
            process=process,
            log_path=log_path,
            timeout_s=STARTUP_TIMEOUT_S,
        )
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


NOBODY = 65534


def as_user(uid: int) -> list[str]:
    """The command prefix that runs a program as ``uid`` (group ``uid``, no extra groups).

    setpriv drops every capability with root, so file permissions hold for the program.
    """
    return [require_tool("setpriv"), f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]


@dataclass(frozen=True)
class OtherUser:
    """A user to run the service as, with a Python environment and project copy it can read."""

    uid: int
    python: Path
    root: Path
    """Holds copies of ``service/`` and ``tests/`` (whose fakes the server unpickles)."""

    def command(self, *args: str) -> list[str]:
        """``python *args`` run as this user."""
        return [*as_user(self.uid), str(self.python), *args]

    def environ(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with imports coming from the copies, never from the checkout."""
        cleared = {k: v for k, v in base.items() if k not in ("VIRTUAL_ENV", "PYTHONHOME")}
        return {**cleared, "PYTHONPATH": str(self.root)}


# The checkout's editable-install hooks point into the checkout, which the user may not read.
_NOT_COPIED = shutil.ignore_patterns("__editable__*", "prediction_service-*", ".pytest_cache")


def readable_install(directory: Path, uid: int) -> OtherUser:
    """Copy this test run's packages and the project's code into ``directory``, readable by all.

    The checkout and its .venv may lie under a directory only root can enter (as /root or a
    ``mktemp -d`` folder do), so a server dropped to another user runs from these copies: a venv
    over the same interpreter, with this venv's site-packages and the project's ``service`` and
    ``tests`` packages. ``directory`` itself must be reachable by ``uid``.

    Raises:
        AssertionError: ``uid`` cannot run the copied environment (e.g. the interpreter itself
            lies in a directory it cannot enter).
    """
    project = Path(__file__).resolve().parent.parent
    environment = directory / "venv"
    venv.EnvBuilder(symlinks=True, with_pip=False).create(environment)
    paths = {"base": str(environment), "platbase": str(environment)}
    # purelib and platlib are usually one directory: copy each directory once.
    libraries = {
        Path(sysconfig.get_path(kind)): Path(sysconfig.get_path(kind, vars=paths))
        for kind in ("purelib", "platlib")
    }
    for source, target in libraries.items():
        if source.is_dir():
            _copy_tree(source, target)
    root = directory / "project"
    for package in ("service", "tests"):
        _copy_tree(project / package, root / package)
    _open_to_everyone(directory)
    user = OtherUser(uid, environment / "bin" / "python", root)
    probe = subprocess.run(
        user.command("-c", "import service.cli, tests.fakes, sklearn"),
        capture_output=True,
        text=True,
        cwd=root,
        env=user.environ(os.environ),
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        raise AssertionError(
            f"uid {uid} cannot run the copied environment in {directory}; is the interpreter "
            f"{Path(sys.executable).resolve()} in a directory that uid can enter?\n{probe.stderr}"
        )
    return user


def _copy_tree(source: Path, target: Path) -> None:
    # A venv holds tens of thousands of files: hard-link those anyone may read already (same
    # inode, nothing to change on it), copy the rest, so no mode in the checkout ever changes.
    def link_or_copy(src: str, dst: str) -> object:
        mode = Path(src).stat().st_mode
        if _open_mode(mode) == mode:
            try:
                Path(dst).hardlink_to(src)
                return dst
            except OSError:
                pass  # another filesystem, or links not allowed there
        return shutil.copy2(src, dst)

    shutil.copytree(
        source,
        target,
        symlinks=True,
        ignore=_NOT_COPIED,
        copy_function=link_or_copy,
        dirs_exist_ok=True,
    )


def _open_mode(mode: int) -> int:
    """``mode`` made readable by anyone, and enterable (or runnable) by anyone if by its owner."""
    return mode | 0o444 | (0o111 if mode & 0o100 else 0)


def _open_to_everyone(directory: Path) -> None:
    """Open every directory and copied file under ``directory`` to anyone (linked ones are)."""
    for path in [directory, *directory.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        if _open_mode(mode) != mode:
            path.chmod(_open_mode(mode))


def require_tool(name: str) -> str:
    """The path of ``name``; fails (never skips) when it is missing, saying how to install it."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed; run scripts/install-tools (as root)")
    return path


@dataclass(frozen=True)
class Reply:
    """One request of a load run: when it was sent, what came back (or the error), how long."""

    sent_at: float
    status: int | None
    model_version: str | None = None
    error: str | None = None
    retry_after: str | None = None
    latency_s: float = 0.0
    body: bytes = b""


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
    headers: Mapping[str, str] | None = None,
    keep_bodies: bool = False,
    on_reply: Callable[[Reply], None] | None = None,
) -> list[Reply]:
    """Send requests over ``connections`` keep-alive connections until time, count or ``stop``.

    Bounded in count (``max_requests``) and time (``duration_s``); errors (refused connections,
    resets, client time-outs) are recorded, not raised, so a test can assert on every reply.
    """
    deadline = time.monotonic() + duration_s
    replies: list[Reply] = []
    data = json.dumps(json_body).encode()
    request_headers = {"Content-Type": "application/json", **(headers or {})}

    async def worker(session: aiohttp.ClientSession) -> None:
        while (
            time.monotonic() < deadline
            and len(replies) < max_requests
            and not (stop is not None and stop.is_set())
        ):
            sent_at = time.monotonic()
            try:
                async with session.post(url + path, data=data, headers=request_headers) as response:
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError) as error:
                replies.append(Reply(sent_at, None, error=f"{type(error).__name__}: {error}"))
                continue
            reply = Reply(
                sent_at,
                response.status,
                response.headers.get("X-Model-Version"),
                retry_after=response.headers.get("Retry-After"),
                latency_s=time.monotonic() - sent_at,
                body=body if keep_bodies else b"",
            )
            replies.append(reply)
            if on_reply is not None:
                on_reply(reply)

    connector = aiohttp.TCPConnector(limit=connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return replies


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) of ``values`` by nearest rank."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
