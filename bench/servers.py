"""Starting, probing and stopping the servers under test, each a process group on 127.0.0.1.

Each server runs in its own session (process group), so stopping it also stops the workers it
forked (gunicorn's, Hypercorn's): SIGTERM to the leader, then SIGKILL to the whole group if it
has not exited in time. Readiness is polled with a bounded deadline by POSTing the bench's own
body for every model, so "ready" means "answers predictions", the same for every server.

:func:`free_port` and :func:`wait_until` are also what the test suite starts its servers with.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench import CHECKOUT
from bench import BenchError
from bench.catalog import BARE
from bench.catalog import BARE_ONE
from bench.catalog import FLASK
from bench.catalog import FLASK_GTHREAD
from bench.catalog import MODEL_PATHS_ENV
from bench.catalog import SERVICE
from bench.catalog import SERVICE_313
from bench.catalog import SERVICE_TRACED

__all__ = [
    "HOST",
    "READY_TIMEOUT_S",
    "RunningServer",
    "answers",
    "free_port",
    "predict_url",
    "server_command",
    "start_server",
    "wait_ready",
    "wait_until",
]

HOST: Final = "127.0.0.1"
READY_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 20.0
_POLL_INTERVAL_S: Final = 0.1
_LOG_TAIL_LINES: Final = 40


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def predict_url(base_url: str, model: str) -> str:
    """``POST /predict`` of ``model``: the service's ``?model=`` picks it; the others accept it."""
    return f"{base_url}/predict?model={model}"


def _bench_env() -> dict[str, str]:
    # The servers run with a working directory of the bench's own, where `bench` is not
    # importable; the service is (it is installed).
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join([str(CHECKOUT), *([path] if path else [])])}


def server_command(
    server: str,
    *,
    port: int,
    store_root: Path,
    artifacts: Mapping[str, Path],
    service_workers: int | None,
    workers: int,
    python313: Path | None = None,
    otlp_endpoint: str | None = None,
) -> tuple[list[str], dict[str, str]]:
    """The command line and extra environment that start ``server`` on 127.0.0.1:``port``.

    ``service_workers`` is the service's ``--workers`` (None: its default); ``workers`` is
    what that comes to, and (d) runs as many. ``python313`` runs the service-3.13 row, and
    ``otlp_endpoint`` (``OTEL_EXPORTER_OTLP_ENDPOINT``) receives the traced row's spans.
    """
    bind = f"{HOST}:{port}"
    if server in (SERVICE, SERVICE_313, SERVICE_TRACED):
        python = sys.executable
        if server == SERVICE_313:
            if python313 is None:
                raise BenchError("the service-3.13 row needs a Python 3.13 virtualenv")
            python = str(python313)
        command = [python, "-m", "service", "serve", "--host", HOST, "--port", str(port)]
        command += ["--model-store", str(store_root)]
        if service_workers is not None:
            command += ["--workers", str(service_workers)]
        # (a) is the service as shipped, tracing off whatever the bench's environment says.
        env = {"PREDICTION_TRACING": "false"}
        if server == SERVICE_TRACED:
            if otlp_endpoint is None:
                raise BenchError("the traced row needs an OTLP endpoint to export to")
            # Every request starts a trace and is sampled (the SDK's default sampler, for
            # requests without a traceparent): tracing's full cost, export included.
            env = {
                "PREDICTION_TRACING": "true",
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint,
                "OTEL_SERVICE_NAME": "prediction-bench",
            }
        return command, env
    if server in (BARE, BARE_ONE):
        processes = workers if server == BARE else 1
        command = [sys.executable, "-m", "bench.apps.bare_app", "--port", str(port)]
        return [*command, "--workers", str(processes)], _bench_env()
    env = {
        MODEL_PATHS_ENV: ",".join(f"{name}={path}" for name, path in artifacts.items()),
        **_bench_env(),
    }
    gunicorn = [sys.executable, "-m", "gunicorn", "--bind", bind]
    app = "bench.apps.flask_app:app"
    if server == FLASK:
        # The tutorial's Dockerfile runs gunicorn's defaults: one sync worker.
        return [*gunicorn, "--workers", "1", "--worker-class", "sync", app], env
    if server == FLASK_GTHREAD:
        return [
            *gunicorn,
            "--workers",
            "2",
            "--threads",
            "8",
            "--worker-class",
            "gthread",
            app,
        ], env
    raise BenchError(f"unknown server {server!r}")


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A started server: where it listens and where its output goes."""

    name: str
    url: str
    pid: int | None
    """The process group leader; None for a server the bench did not start (``--url``)."""
    log_path: Path | None


def _log_tail(log_path: Path | None, lines: int = _LOG_TAIL_LINES) -> str:
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(tail)


def answers(url: str, body: bytes | None = None, *, timeout_s: float = 5.0) -> bool:
    """Whether ``url`` answers 2xx: a GET, or a JSON POST of ``body``; False when unreachable."""
    request = urllib.request.Request(
        url,
        data=body,
        method="GET" if body is None else "POST",
        headers={} if body is None else {"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError):
        return False


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    timeout_s: float = READY_TIMEOUT_S,
) -> None:
    """Poll ``ready()`` until it is true, ``process`` dies, or the deadline passes.

    Raises:
        BenchError: the process exited or ``ready`` stayed false (with the tail of the log).
    """
    deadline = time.monotonic() + timeout_s
    while not ready():
        if process is not None and process.poll() is not None:
            raise BenchError(f"{what} exited with {process.returncode}:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{what} not ready within {timeout_s:g} s:\n{_log_tail(log_path)}")
        # Polling a condition against a bounded deadline, not sleeping in place of a signal.
        time.sleep(_POLL_INTERVAL_S)


def wait_ready(
    base_url: str,
    models: Sequence[str],
    body: bytes,
    *,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
    timeout_s: float = READY_TIMEOUT_S,
) -> None:
    """Poll until every model answers a prediction, the process dies, or the deadline passes.

    Raises:
        BenchError: the server exited or was not ready in time (with the tail of its log).
    """
    pending = list(models)

    def every_model_answers() -> bool:
        while pending and answers(predict_url(base_url, pending[0]), body):
            pending.pop(0)
        return not pending

    wait_until(
        every_model_answers,
        what=f"server at {base_url}",
        process=process,
        log_path=log_path,
        timeout_s=timeout_s,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the leader, wait, then SIGKILL whatever is left of its process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_S)
    # The group is the one this module created for the server (start_new_session), so this
    # reaches its workers and nothing else; they may outlive a leader that was killed.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(STOP_TIMEOUT_S)


@contextmanager
def start_server(
    server: str,
    *,
    log_dir: Path,
    store_root: Path,
    artifacts: Mapping[str, Path],
    probe_body: bytes,
    workers: int,
    service_workers: int | None = None,
    python313: Path | None = None,
    otlp_endpoint: str | None = None,
    cwd: Path | None = None,
) -> Iterator[RunningServer]:
    """Start ``server`` on a free port, wait until it answers, and stop it when the block ends.

    Raises:
        BenchError: it exited or did not answer in time.
    """
    port = free_port()
    command, extra_env = server_command(
        server,
        port=port,
        store_root=store_root,
        artifacts=artifacts,
        service_workers=service_workers,
        workers=workers,
        python313=python313,
        otlp_endpoint=otlp_endpoint,
    )
    log_path = log_dir / f"{server}-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **extra_env},
            # A cwd of the bench's own keeps gunicorn from picking up a gunicorn.conf.py.
            cwd=cwd,
            start_new_session=True,
        )
    try:
        url = f"http://{HOST}:{port}"
        wait_ready(url, list(artifacts), probe_body, process=process, log_path=log_path)
        yield RunningServer(name=server, url=url, pid=process.pid, log_path=log_path)
    finally:
        _stop(process)
