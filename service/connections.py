"""The TCP connection server of a worker: Hypercorn's, without two costs it pays per request.

Hypercorn runs one ``TCPServer`` per connection. For every request on a keep-alive connection it

- writes the response head and the body with a ``write(2)`` each: two system calls, and two TCP
  segments for the client to receive;
- starts a task when the connection turns idle after a response (it waits, through
  ``asyncio.wait_for`` and so a second task, for the keep-alive time-out or the server's
  shutdown), and cancels and awaits it when the next request arrives.

:class:`LeanTCPServer` keeps Hypercorn's protocol code and changes only those two things: the
data a connection is given within one event-loop iteration goes out in one write at the end of
that iteration (at once from :data:`WRITE_NOW_BYTES`; Hypercorn's back-pressure applies as
before), and one task per connection, started with it, closes it when it has been idle for the
keep-alive time-out or the server shuts down while it is idle. Measured side by side on the
bench's LogisticRegression at 64 connections (2 workers each, medians of 8 alternating rounds,
CPU of the whole process tree): 632 us of CPU per request with Hypercorn's server, 501 with this
one; 2,856 and 3,755 req/s.

It relies on Hypercorn's ``hypercorn.asyncio.tcp_server.TCPServer``, which is not public API, so
:func:`install` checks the Hypercorn version and the members it overrides first, and leaves
Hypercorn's own server in place (saying so in the log) for any other.

Threads: everything here runs on the worker's event-loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import logging
from collections.abc import Callable
from typing import Any
from typing import Final

import hypercorn.asyncio.run as hypercorn_run
from hypercorn.asyncio.tcp_server import TCPServer
from hypercorn.asyncio.worker_context import AsyncioSingleTask
from hypercorn.events import Closed
from hypercorn.events import RawData
from hypercorn.typing import TaskGroup

__all__ = ["TESTED_HYPERCORN", "WRITE_NOW_BYTES", "LeanTCPServer", "install"]

log = logging.getLogger(__name__)

TESTED_HYPERCORN: Final = ((0, 18),)
"""The Hypercorn releases (major, minor) whose ``TCPServer`` :class:`LeanTCPServer` extends."""

WRITE_NOW_BYTES: Final = 64 * 1024
"""Data waiting to go out is written at once from this size: a large body gains nothing from
waiting for the end of the iteration, and writing it bounds what waits in memory."""

# What LeanTCPServer overrides or calls of Hypercorn's TCPServer.
_MEMBERS = ("protocol_send", "run", "_close", "_initiate_server_close")


class LeanTCPServer(TCPServer):
    """Hypercorn's connection server, writing once per loop iteration and idling without tasks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._flush: asyncio.Handle | None = None
        self._closing: asyncio.Task[None] | None = None
        self.idle_task: _KeepAlive = _KeepAlive(self)

    async def protocol_send(self, event: Any) -> None:
        if type(event) is not RawData:
            await super().protocol_send(event)
            return
        self._out.append(event.data)
        self._out_bytes += len(event.data)
        try:
            if self._out_bytes >= WRITE_NOW_BYTES:
                self.write_out()
            elif self._flush is None:
                self._flush = self.loop.call_soon(self._flush_soon)
            # Hypercorn's back-pressure: waits only while the transport's buffer is full.
            await self.writer.drain()
        except (ConnectionError, RuntimeError):
            await self.protocol.handle(Closed())

    def write_out(self) -> None:
        """Write the data waiting to go out, in one write.

        Raises:
            ConnectionError, RuntimeError: as the transport's ``write`` does.
        """
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if not self._out:
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out.clear()
        self._out_bytes = 0
        self.writer.write(data)

    def _flush_soon(self) -> None:
        self._flush = None
        try:
            self.write_out()
        except (ConnectionError, RuntimeError):
            # As Hypercorn does when its own write fails: the connection is gone. The reference
            # keeps the task alive until it is done (the loop holds tasks only weakly).
            self._closing = self.loop.create_task(self.protocol.handle(Closed()))

    async def _close(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # closing anyway
            self.write_out()
        await super()._close()
        self.idle_task.cancel()


class _KeepAlive(AsyncioSingleTask):
    """Closes a connection idle for the keep-alive time-out, or idle when the server shuts down.

    Hypercorn's ``TCPServer`` calls ``restart`` when its connection turns idle and ``stop`` when
    a request arrives; here both only note the time and state, and one task per connection
    wakes up at the deadline (or at shutdown) and checks them.
    """

    def __init__(self, server: LeanTCPServer) -> None:
        super().__init__()
        self._server = server
        self._loop = server.loop
        self._timeout_s: float = server.config.keep_alive_timeout
        self._idle = False
        self._idle_since = 0.0
        self._task: asyncio.Task[None] | None = None

    async def restart(self, task_group: TaskGroup, action: Callable[..., Any]) -> None:
        self._idle = True
        self._idle_since = self._loop.time()
        if self._task is None:
            self._task = self._loop.create_task(self._watch())

    async def stop(self) -> None:
        self._idle = False

    def cancel(self) -> None:
        """Stop watching: the connection is closed."""
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def _watch(self) -> None:
        terminated = self._server.context.terminated
        while True:
            wait_s = self._timeout_s
            if self._idle:
                wait_s -= self._loop.time() - self._idle_since
                if wait_s <= 0:
                    break
            try:
                await asyncio.wait_for(terminated.wait(), wait_s)
            except TimeoutError:
                continue
            if self._idle:
                break
            # Busy at shutdown: Hypercorn closes the connection after this response.
            return
        # Shielded, as Hypercorn's own idle time-out does: closing cancels this task.
        await asyncio.shield(self._server._initiate_server_close())


def install() -> bool:
    """Serve this process's connections with :class:`LeanTCPServer`, if Hypercorn is one it fits.

    Returns whether it did; Hypercorn's own server stays otherwise, and the log says why.
    """
    version = importlib.metadata.version("hypercorn")
    release = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if release not in TESTED_HYPERCORN or not all(hasattr(TCPServer, m) for m in _MEMBERS):
        log.info("Hypercorn %s: serving connections with its own TCP server", version)
        return False
    # worker_serve looks the class up in its module at every connection.
    hypercorn_run.TCPServer = LeanTCPServer  # type: ignore[attr-defined]  # imported there, not exported
    return True
