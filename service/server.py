"""Serving the app with Hypercorn: its config from settings, signals, one or several workers."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config
from hypercorn.typing import ASGIFramework

from service.http import create_app
from service.http.state import get_state
from service.logs import configure_logging
from service.metrics import MULTIPROC_ENV
from service.settings import Settings

__all__ = ["hypercorn_config", "serve"]

log = logging.getLogger(__name__)

# Hypercorn evaluates the part after the colon, so each worker process builds its own app.
APPLICATION_PATH = "service.server:worker_app()"
# Pending connections the kernel queues per listening socket (capped by net.core.somaxconn).
LISTEN_BACKLOG = 2048


def hypercorn_config(settings: Settings) -> Config:
    """A Hypercorn config that serves ``settings``' address with its timeouts."""
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.workers = settings.workers
    config.graceful_timeout = settings.graceful_timeout_s
    config.keep_alive_timeout = settings.keep_alive_s
    # Hypercorn's default backlog (100) drops SYNs when hundreds of clients connect at once, and
    # the kernel's 1 s, 2 s, ... retries then show up as multi-second latencies.
    config.backlog = LISTEN_BACKLOG
    config.worker_class = "uvloop" if _has_uvloop() else "asyncio"
    config.application_path = APPLICATION_PATH
    # Our access log is JSON and written by the app; Hypercorn's text one would duplicate it.
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, then drain and return."""
    config = hypercorn_config(settings)
    if settings.workers == 1:
        _run(_serve_one(settings, config))
        return
    # Each worker is a fresh (spawned) process that reads its settings from the environment
    # and must find the metrics directory there before it imports prometheus_client.
    from hypercorn.run import run

    os.environ.update(settings.to_env())
    os.environ[MULTIPROC_ENV] = str(_fresh_multiprocess_dir())
    exit_code = run(config)
    if exit_code:
        raise SystemExit(exit_code)


async def _serve_one(settings: Settings, config: Config) -> None:
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
    await hypercorn_serve(app, config, shutdown_trigger=stop.wait)
    log.info("server stopped")


def worker_app() -> ASGIFramework:
    """The app of one worker process (``--workers N > 1``): settings from the environment."""
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level)
    return create_app(settings)


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


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _run(main: Coroutine[Any, Any, None]) -> None:
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if _has_uvloop():
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)
