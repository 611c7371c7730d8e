"""Starting the server: start-up checks, the listening sockets, and the supervisor of workers.

This process checks the store, binds the sockets (so a port in use is one line, not a
traceback) and, with one worker, serves in-process (:mod:`service.serving`). With several, it
stays a light supervisor: it spawns the workers, passes them the sockets, forwards signals to
them and logs the start-up summary once every worker has reported what it loaded. It imports
neither the app nor Quart, scikit-learn or numpy (workers are spawned and import them
themselves), so it holds a few tens of MB however large the models are. Every worker runs the
same serving loop as a single process, so each drains on SIGTERM exactly as one process does
(Hypercorn's own multi-process runner stops workers without the drain period).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from hypercorn.config import Config

from service.logs import configure_logging
from service.settings import Settings
from service.summary import ServedModel
from service.summary import log_summary

__all__ = ["LISTEN_BACKLOG", "StartupError", "bind", "check_store", "hypercorn_config", "serve"]

log = logging.getLogger(__name__)

# Pending connections the kernel queues per listening socket (capped by net.core.somaxconn).
LISTEN_BACKLOG = 2048
# Signals the supervisor passes on to its workers.
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# prometheus_client's multiprocess mode reads this variable (service.metrics names it too; it
# is spelled out here so the supervisor need not import prometheus_client and numpy).
PROMETHEUS_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_PORT_HINT = "choose another port with PREDICTION_PORT or --port"
_HOST_HINT = "set PREDICTION_HOST or --host to an address of this machine"


class StartupError(Exception):
    """The server cannot start; the message is one line saying why and what to change."""


def hypercorn_config(settings: Settings) -> Config:
    """A Hypercorn config that serves ``settings``' address with its timeouts."""
    config = Config()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.graceful_timeout = settings.graceful_timeout_s
    config.keep_alive_timeout = settings.keep_alive_s
    # Hypercorn's default backlog (100) drops SYNs when hundreds of clients connect at once, and
    # the kernel's 1 s, 2 s, ... retries then show up as multi-second latencies.
    config.backlog = LISTEN_BACKLOG
    # Our access log is written by the app; Hypercorn's text one would duplicate it.
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT, drain, and return; exits non-zero if a worker failed.

    Raises:
        StartupError: the store cannot be read or the address cannot be bound.
    """
    check_store(settings.model_store)
    sockets = bind(settings)
    port: int = sockets[0].getsockname()[1]
    if settings.workers == 1:
        # Imported only here: the app brings Quart, scikit-learn and numpy.
        from service.serving import run_worker

        run_worker(settings, sockets, lambda models: log_summary(settings, port, models))
        return
    exit_code = _supervise(settings, sockets, port)
    if exit_code:
        raise SystemExit(exit_code)


def check_store(root: Path) -> None:
    """Fail unless ``root`` is a directory this process can list (it may hold no model yet).

    Raises:
        StartupError: it does not exist, is not a directory, or cannot be read.
    """
    hint = "point PREDICTION_MODEL_STORE or --model-store at the store directory"
    try:
        with os.scandir(root):
            pass
    except FileNotFoundError:
        raise StartupError(f"model store {root} does not exist; {hint}.") from None
    except NotADirectoryError:
        raise StartupError(f"model store {root} is not a directory; {hint}.") from None
    except PermissionError:
        raise StartupError(
            f"model store {root} is not readable by this user (uid {os.getuid()}); "
            "give it read and execute permission."
        ) from None
    except OSError as error:
        raise StartupError(f"model store {root} cannot be read: {error.strerror}.") from None


def bind(settings: Settings) -> list[socket.socket]:
    """The listening socket of ``settings.host:settings.port``, bound (workers listen on it).

    Raises:
        StartupError: the port is taken, the host is not an address of this machine, or
            binding it is not allowed.
    """
    host, port = settings.host, settings.port
    where = f"{host}:{port}"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: responses go out at once, not after Nagle's delay.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except socket.gaierror as error:
        sock.close()
        raise StartupError(
            f"cannot bind {where}: {host} does not resolve ({error.strerror}); {_HOST_HINT}."
        ) from None
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            message = f"port {port} on {host} is already in use; {_PORT_HINT}"
        elif error.errno == errno.EADDRNOTAVAIL:
            message = f"cannot bind {where}: it is not an address of this machine; {_HOST_HINT}"
        elif error.errno == errno.EACCES:
            message = f"cannot bind {where}: permission denied (ports below 1024 need privileges)"
            message += f"; {_PORT_HINT}"
        else:
            message = f"cannot bind {where}: {error.strerror}"
        raise StartupError(message + ".") from None
    return [sock]


def _supervise(settings: Settings, sockets: Sequence[socket.socket], port: int) -> int:
    """Run ``settings.workers`` worker processes on shared sockets; their first failure code.

    The workers' metrics directory is ``PROMETHEUS_MULTIPROC_DIR`` (wiped), or a temporary one
    that is removed once they have all exited.
    """
    configured = os.environ.get(PROMETHEUS_MULTIPROC_ENV)
    metrics_dir = _fresh_multiprocess_dir(configured)
    # Workers find the metrics directory in their environment before importing
    # prometheus_client (spawned processes start from scratch).
    os.environ[PROMETHEUS_MULTIPROC_ENV] = str(metrics_dir)
    try:
        return _run_workers(settings, sockets, port)
    finally:
        if not configured:
            del os.environ[PROMETHEUS_MULTIPROC_ENV]
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _run_workers(settings: Settings, sockets: Sequence[socket.socket], port: int) -> int:
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = []
    reports: list[Connection] = []
    worker_ends: list[Connection] = []
    # Nothing is ever written: when this process dies, however it dies, the kernel closes the
    # write end, and each worker reads EOF and stops instead of serving on as an orphan.
    lifeline, lifeline_end = context.Pipe(duplex=False)
    for index in range(settings.workers):
        reader, writer = context.Pipe(duplex=False)
        workers.append(
            context.Process(
                target=_worker,
                args=(settings, list(sockets), writer, lifeline),
                name=f"worker-{index}",
            )
        )
        reports.append(reader)
        worker_ends.append(writer)
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
    # Each worker holds its own copy now; closing ours makes a dead worker's pipe read as EOF.
    for writer in worker_ends:
        writer.close()
    lifeline.close()

    loaded: list[tuple[ServedModel, ...]] = []
    exit_code = 0
    running = list(workers)
    while running:
        for ready in wait([*reports, *(worker.sentinel for worker in running)]):
            if isinstance(ready, Connection):
                # EOF: the worker died before it served; its sentinel says so next.
                with contextlib.suppress(EOFError):
                    loaded.append(ready.recv())
                reports.remove(ready)
                ready.close()
                if len(loaded) == len(workers):
                    log_summary(settings, port, loaded[0])
                continue
            worker = next(w for w in running if w.sentinel == ready)
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
    for reader in reports:
        reader.close()
    lifeline_end.close()
    for sock in sockets:
        sock.close()
    return exit_code


def _worker(
    settings: Settings, sockets: list[socket.socket], report: Connection, lifeline: Connection
) -> None:
    """A worker process: serve, and report what was loaded once serving starts."""
    configure_logging(settings.log_level, settings.log_format)
    from service.serving import run_worker

    def on_serving(models: tuple[ServedModel, ...]) -> None:
        report.send(models)
        report.close()

    run_worker(settings, sockets, on_serving, lifeline=lifeline)


def _fresh_multiprocess_dir(configured: str | None) -> Path:
    """An empty metrics directory: the configured one wiped, or a new temporary one."""
    if configured:
        path = Path(configured)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path
    return Path(tempfile.mkdtemp(prefix="prediction-metrics-"))
