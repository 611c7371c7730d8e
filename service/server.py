"""Serving the app with Hypercorn: its config from settings, signals, and worker processes.

One worker serves in this process. With several, this process binds the sockets once, spawns
the workers, and forwards signals to them; every worker runs the same serving loop as a single
process, so each drains on SIGTERM exactly as one process does (Hypercorn's own multi-process
runner stops workers without the drain period).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from collections.abc import Coroutine
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from service.engines import fit_thread_pools
from service.http import create_app
from service.http.state import get_state
from service.logs import configure_logging
from service.metrics import MULTIPROC_ENV
from service.settings import Settings

__all__ = ["hypercorn_config", "serve"]

log = logging.getLogger(__name__)

# Pending connections the kernel queues per listening socket (capped by net.core.somaxconn).
LISTEN_BACKLOG = 2048
# Signals the supervisor passes on to its workers.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def hypercorn_config(settings: Settings) -> Config:
    """A Hypercorn config that serves ``settings``' address with its timeouts."""
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.graceful_timeout = settings.graceful_timeout_s
    config.keep_alive_timeout = settings.keep_alive_s
    # Hypercorn's default backlog (100) drops SYNs when hundreds of clients connect at once, and
    # the kernel's 1 s, 2 s, ... retries then show up as multi-second latencies.
    config.backlog = LISTEN_BACKLOG
    # Our access log is JSON and written by the app; Hypercorn's text one would duplicate it.
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, drain, and return; exits non-zero if a worker failed."""
    if settings.workers == 1:
        _run(_serve_one(settings))
        return
    exit_code = _supervise(settings)
    if exit_code:
        raise SystemExit(exit_code)


async def _serve_one(settings: Settings, sockets: Sockets | None = None) -> None:
    fit_thread_pools(settings)
    config = hypercorn_config(settings)
    app = create_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        state = get_state(app)
        if state.draining:
            return
        # Readiness turns 503 at once so load balancers stop sending, then after the drain
        # period Hypercorn stops accepting and lets accepted requests finish.
        state.draining = True
        log.info("received %s; draining for %.1f s", signal.Signals(signum).name, settings.drain_s)
        loop.call_later(settings.drain_s, stop.set)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    # SIGHUP re-reads the store at once instead of waiting for the next poll.
    loop.add_signal_handler(signal.SIGHUP, get_state(app).registry.request_reload)
    await worker_serve(
        wrap_app(app, config.wsgi_max_body_size, "asgi"),
        config,
        sockets=sockets,
        shutdown_trigger=stop.wait,
    )
    log.info("server stopped")


def _supervise(settings: Settings) -> int:
    """Run ``settings.workers`` worker processes on shared sockets; their first failure code."""
    # Workers find the metrics directory in their environment before importing
    # prometheus_client (spawned processes start from scratch).
    os.environ[MULTIPROC_ENV] = str(_fresh_multiprocess_dir())
    sockets = hypercorn_config(settings).create_sockets()
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = [
        context.Process(target=_worker, args=(settings, sockets), name=f"worker-{index}")
        for index in range(settings.workers)
    ]
    stopping = False

    def forward(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    for worker in workers:
        worker.start()
    log.info("started %d workers", len(workers))

    exit_code = 0
    running = list(workers)
    while running:
        for sentinel in wait([worker.sentinel for worker in running]):
            worker = next(w for w in running if w.sentinel == sentinel)
            worker.join()
            running.remove(worker)
            if worker.exitcode and not exit_code:
                exit_code = worker.exitcode
            if not stopping:
                # A worker that dies on its own takes the others down: the orchestrator
                # restarts the whole server, which is simpler to reason about than respawns.
                log.error("%s exited with %s; stopping", worker.name, worker.exitcode)
                exit_code = exit_code or 1
                forward(signal.SIGTERM, None)
    for sock in [*sockets.insecure_sockets, *sockets.secure_sockets]:
        sock.close()
    return exit_code


def _worker(settings: Settings, sockets: Sockets) -> None:
    configure_logging(settings.log_level)
    _run(_serve_one(settings, sockets))


def _fresh_multiprocess_dir() -> Path:
    """An empty metrics directory: the configured one wiped, or a new temporary one."""
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        path = Path(configured)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path
    return Path(tempfile.mkdtemp(prefix="prediction-metrics-"))


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
