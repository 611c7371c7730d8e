"""One serving process: the app on Hypercorn over sockets bound by :mod:`service.server`.

This is where the app (Quart, scikit-learn, numpy) is imported: in the only process with one
worker, in each spawned worker with several. The app runs on Hypercorn's ``serve()`` with the
inherited sockets named as ``fd://`` binds, its connections served by
:class:`service.connections.LeanTCPServer` where the Hypercorn release is one it extends.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
from collections.abc import AsyncGenerator
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from hypercorn.asyncio import serve

from service import connections
from service.engines import fit_thread_pools
from service.http import create_app
from service.http.state import get_state
from service.models import ModelRegistry
from service.server import hypercorn_config
from service.settings import Settings
from service.summary import ServedModel

__all__ = ["freeze_heap", "run_worker", "served_models"]

log = logging.getLogger(__name__)


def run_worker(
    settings: Settings,
    sockets: Sequence[socket.socket],
    on_serving: Callable[[tuple[ServedModel, ...]], None],
    *,
    lifeline: Connection | None = None,
) -> None:
    """Serve on ``sockets`` until SIGTERM/SIGINT (or the supervisor's death) and the drain.

    Args:
        settings: the server's settings.
        sockets: bound listening sockets; this process takes them over and closes them.
        on_serving: called once the models are loaded, before the first request is accepted,
            with what is served.
        lifeline: the read end of a pipe the supervisor holds open; EOF means it died, and the
            worker drains and stops as on SIGTERM.
    """
    _run(_serve(settings, sockets, on_serving, lifeline))


def served_models(registry: ModelRegistry) -> tuple[ServedModel, ...]:
    """Every version ``registry`` serves, by name, newest first."""
    return tuple(
        ServedModel(served.name, served.version, served.engine)
        for _, versions in sorted(registry.models().items())
        for served in versions
    )


async def _serve(
    settings: Settings,
    sockets: Sequence[socket.socket],
    on_serving: Callable[[tuple[ServedModel, ...]], None],
    lifeline: Connection | None,
) -> None:
    fit_thread_pools(settings)
    # asyncio.eager_task_factory (3.12+) was tried: uvloop 0.23 on 3.13 refuses it at shutdown
    # (TypeError: unexpected keyword argument 'eager_start'), and uvloop is the faster loop.
    loop = asyncio.get_running_loop()
    connections.install()
    config = hypercorn_config(settings)
    # Detached, so Hypercorn's socket object alone owns each descriptor and closes it once.
    config.bind = [f"fd://{sock.detach()}" for sock in sockets]
    app = create_app(settings)
    state = get_state(app)
    stop = asyncio.Event()

    def drain(reason: str) -> None:
        if state.draining:
            return
        # Readiness turns 503 at once so load balancers stop sending, then after the drain
        # period Hypercorn stops accepting and lets accepted requests finish.
        state.draining = True
        log.info("%s; draining for %.1f s", reason, settings.drain_s)
        loop.call_later(settings.drain_s, stop.set)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, drain, f"received {signal.Signals(signum).name}")
    if lifeline is not None:

        def supervisor_gone() -> None:
            loop.remove_reader(lifeline.fileno())
            drain("the supervisor process is gone")

        loop.add_reader(lifeline.fileno(), supervisor_gone)
    # SIGHUP re-reads the store at once instead of waiting for the next poll.
    loop.add_signal_handler(signal.SIGHUP, state.registry.request_reload)

    # Registered after create_app's own lifespan, so it runs once the models are loaded.
    @app.while_serving
    async def _report() -> AsyncGenerator[None, None]:
        freeze_heap()
        on_serving(served_models(state.registry))
        yield

    await serve(app, config, shutdown_trigger=stop.wait)
    log.info("server stopped")


def freeze_heap() -> None:
    """Exempt everything loaded so far (modules, models) from the cyclic garbage collector.

    Under load a worker allocates fast enough for a full collection every few seconds, and
    each one walked the whole heap of numpy, scipy and scikit-learn: 94-108 ms pauses, measured
    with ``gc.callbacks`` at 64 connections, which were the p99. After ``gc.freeze()`` they take
    4-9 ms. Objects of versions loaded later are collected as usual; a frozen object that becomes
    cyclic garbage is never reclaimed, which for the start-up heap is the point.
    """
    gc.collect()
    gc.freeze()


def _run(main: Coroutine[Any, Any, None]) -> None:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop
    except ImportError:  # uvloop has no Windows build; asyncio's loop serves there
        pass
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
