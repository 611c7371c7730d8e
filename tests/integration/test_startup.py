"""Start-up as a person and a pipeline see it: the log format, the summary, one-line failures."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from bench.servers import free_port
from bench.servers import wait_until
from tests.helpers import require_tool
from tests.helpers import serve_process

pytestmark = pytest.mark.integration

STARTUP_TIMEOUT_S = 60.0
# The supervisor's budget: a Python interpreter, Hypercorn's config and the standard library.
SUPERVISOR_RSS_LIMIT_BYTES = 50 * 1024 * 1024
CONSOLE_LINE = re.compile(r"\d\d:\d\d:\d\d (INFO|WARNING|ERROR|DEBUG) +\S")


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "service", "serve", "--host", "127.0.0.1", *args]


def json_records(log: str) -> list[dict[str, object]]:
    """Every line of ``log`` parsed as JSON; fails on a line that is not."""
    return [json.loads(line) for line in log.splitlines() if line.strip()]


def summaries(log: str) -> list[dict[str, object]]:
    return [record for record in json_records(log) if "summary" in record]


def read_pty_until(master: int, marker: str, process: subprocess.Popen[bytes]) -> str:
    """What the server wrote to the terminal up to and including ``marker``."""
    seen = b""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while marker.encode() not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            raise AssertionError(f"no {marker!r} on the terminal:\n{seen.decode(errors='replace')}")
        readable, _, _ = select.select([master], [], [], remaining)
        if readable:
            try:
                seen += os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end was closed
                break
    return seen.decode(errors="replace")


@pytest.mark.parametrize(("log_format", "console"), [(None, True), ("json", False)])
def test_log_format_on_a_terminal(store_root: Path, log_format: str | None, console: bool) -> None:
    """On a terminal, auto writes readable lines (and json, when asked, JSON)."""
    env = {**os.environ, "PREDICTION_WORKERS": "1"}
    if log_format is not None:
        env["PREDICTION_LOG_FORMAT"] = log_format
    master, slave = pty.openpty()
    port = free_port()
    process = subprocess.Popen(
        serve_command("--port", str(port), "--model-store", str(store_root)),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    try:
        text = read_pty_until(master, "/readyz", process)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        os.close(master)

    lines = [line for line in text.splitlines() if line.strip()]
    if console:
        headline = next(line for line in lines if "serving http" in line)
        assert CONSOLE_LINE.match(headline), text
        assert headline.endswith(f"INFO    serving http://127.0.0.1:{port} with 1 worker"), text
        assert not any(line.lstrip().startswith("{") for line in lines), text
    else:
        assert 1 == len(summaries("\n".join(lines))), text


def test_log_format_on_a_pipe_is_json(tmp_path: Path, store_root: Path) -> None:
    """On a pipe (no terminal), auto writes one JSON object per line, the summary among them."""
    with serve_process(tmp_path, "--model-store", str(store_root)) as server:
        assert 0 == server.stop()
        log = server.log()

    records = json_records(log)
    assert {"ts", "level", "logger", "message", "pid"} <= set(records[0]), log
    (summary,) = summaries(log)
    assert server.url == summary["summary"]["address"]  # type: ignore[index]


def test_console_format_on_a_pipe_when_asked(tmp_path: Path, store_root: Path) -> None:
    """PREDICTION_LOG_FORMAT=console writes readable lines even into a pipe."""
    with serve_process(
        tmp_path, "--model-store", str(store_root), env={"PREDICTION_LOG_FORMAT": "console"}
    ) as server:
        assert 0 == server.stop()
        log = server.log()

    assert all(CONSOLE_LINE.match(line) or line.startswith(" ") for line in log.splitlines()), log


def test_one_summary_from_the_supervisor_of_two_workers(tmp_path: Path, store_root: Path) -> None:
    """With two workers, the parent logs one summary naming every model; workers repeat nothing."""
    with serve_process(
        tmp_path,
        "--model-store",
        str(store_root),
        env={"PREDICTION_WORKERS": "2", "PREDICTION_DEFAULT_MODEL": "iris"},
    ) as server:
        parent = server.process.pid
        assert 0 == server.stop()
        log = server.log()

    (record,) = summaries(log)
    summary = record["summary"]
    assert (parent, f"serving {server.url} with 2 workers") == (record["pid"], record["message"])
    assert {
        "address": server.url,
        "workers": 2,
        "store": str(store_root),
        "models": [
            {"name": "diabetes", "version": 1, "engine": "sklearn"},
            {"name": "iris", "version": 1, "engine": "trees"},
            {"name": "loans", "version": 1, "engine": "sklearn"},
        ],
        "docs": f"{server.url}/docs",
        "metrics": f"{server.url}/metrics",
        "readyz": f"{server.url}/readyz",
        "settings": {"PREDICTION_DEFAULT_MODEL": "iris"},
    } == summary
    assert "Running on" not in log
    assert 2 == len({r["pid"] for r in json_records(log) if r["message"] == "server stopped"})


def test_supervisor_removes_the_metrics_directory_it_made(tmp_path: Path, store_root: Path) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR, the workers' temporary metrics directory is removed
    once the server stops."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with serve_process(
        tmp_path,
        "--model-store",
        str(store_root),
        env={"PREDICTION_WORKERS": "2", "TMPDIR": str(scratch)},
    ) as server:
        (made,) = scratch.glob("prediction-metrics-*")
        assert any(made.iterdir()), "the workers write their metrics there"
        assert 0 == server.stop()

    assert not made.exists()


def vm_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_supervisor_stays_light(tmp_path: Path, store_root: Path) -> None:
    """The parent of two workers holds at most 50 MB: it imports neither the app nor the models."""
    with serve_process(
        tmp_path, "--model-store", str(store_root), env={"PREDICTION_WORKERS": "2"}
    ) as server:
        workers = worker_pids(server.process.pid)
        parent_rss = vm_rss_bytes(server.process.pid)
        worker_rss = [vm_rss_bytes(pid) for pid in workers]

    # The workers hold the app, so this measures the right process.
    assert (True, 2, True) == (
        parent_rss <= SUPERVISOR_RSS_LIMIT_BYTES,
        len(workers),
        all(rss > SUPERVISOR_RSS_LIMIT_BYTES for rss in worker_rss),
    ), f"parent {parent_rss / 2**20:.1f} MiB, workers {[r / 2**20 for r in worker_rss]}"


def test_workers_stop_when_the_supervisor_dies(tmp_path: Path, store_root: Path) -> None:
    """SIGKILL of the parent leaves no orphan: each worker drains and exits on its own."""
    with serve_process(
        tmp_path,
        "--model-store",
        str(store_root),
        env={"PREDICTION_WORKERS": "2"},
    ) as server:
        workers = worker_pids(server.process.pid)
        server.process.kill()
        server.process.wait(10)

        wait_until(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers),
            what="both workers to exit",
            timeout_s=30,
        )

        assert 2 == len(workers)
        assert "the supervisor process is gone; draining" in server.log()


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's worker processes (its other child is multiprocessing's resource tracker)."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children")
    return [
        int(pid)
        for pid in children.read_text().split()
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_supervisor_modules_import_nothing_heavy() -> None:
    """The modules the supervisor runs import no scikit-learn, numpy, Quart or prometheus_client."""
    heavy = ("sklearn", "numpy", "scipy", "quart", "prometheus_client", "joblib")
    code = (
        "import sys, service.__main__, service.cli, service.server, service.summary\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )

    assert "[]\n" == result.stdout


def start_failure(*args: str, prefix: Sequence[str] = ()) -> tuple[int, str]:
    """Exit status and stderr of a server that must fail to start."""
    result = subprocess.run(
        [*prefix, *serve_command(*args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PREDICTION_WORKERS": "2"},
    )
    return result.returncode, result.stderr


def test_port_in_use(store_root: Path) -> None:
    """A port another process listens on is one line naming it and how to choose another."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        status, stderr = start_failure("--port", str(port), "--model-store", str(store_root))

    assert (
        1,
        f"error: port {port} on 127.0.0.1 is already in use; "
        "choose another port with PREDICTION_PORT or --port.\n",
    ) == (status, stderr)


def test_address_not_of_this_machine(store_root: Path) -> None:
    """An address no interface has (TEST-NET-1) is one line naming it and PREDICTION_HOST."""
    status, stderr = start_failure(
        "--host", "192.0.2.1", "--port", "5000", "--model-store", str(store_root)
    )

    assert (
        1,
        "error: cannot bind 192.0.2.1:5000: it is not an address of this machine; "
        "set PREDICTION_HOST or --host to an address of this machine.\n",
    ) == (status, stderr)


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda root: root / "missing", "does not exist"),
        (lambda root: root / "iris" / "1" / "model.json", "is not a directory"),
    ],
)
def test_store_missing_or_not_a_directory(
    store_root: Path, make: Callable[[Path], Path], problem: str
) -> None:
    """A store path that is missing or a file is one line naming it and the setting."""
    path = make(store_root)

    status, stderr = start_failure("--port", str(free_port()), "--model-store", str(path))

    assert (
        1,
        f"error: model store {path} {problem}; "
        "point PREDICTION_MODEL_STORE or --model-store at the store directory.\n",
    ) == (status, stderr)


def test_store_not_readable(store_root: Path) -> None:
    """A store the server's user cannot read is one line naming it and the uid."""
    # Root reads anything with CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH, so as root the server
    # runs without them; it still imports the service wherever the checkout is.
    prefix = []
    if os.getuid() == 0:
        prefix = [require_tool("setpriv"), "--bounding-set=-dac_override,-dac_read_search"]
    store_root.chmod(0)
    try:
        status, stderr = start_failure(
            "--port", str(free_port()), "--model-store", str(store_root), prefix=prefix
        )
    finally:
        store_root.chmod(0o755)

    assert (
        1,
        f"error: model store {store_root} is not readable by this user (uid {os.getuid()}); "
        "give it read and execute permission.\n",
    ) == (status, stderr)


def test_empty_store_warns_and_serves_a_model_added_later(tmp_path: Path, store_root: Path) -> None:
    """A store with no valid model: a warning naming it, 503 until a model lands, then 200."""
    empty = tmp_path / "mounted"
    empty.mkdir()
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            serve_command("--port", str(port), "--model-store", str(empty)),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PREDICTION_WORKERS": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        first = poll_readyz(url, process, until=lambda status: status is not None)
        shutil.copytree(store_root / "iris", empty / "iris")
        process.send_signal(signal.SIGHUP)
        then = poll_readyz(url, process, until=lambda status: status == 200)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)

    warnings = [r for r in json_records(log_path.read_text()) if r["level"] == "warning"]
    assert (503, 200) == (first, then)
    assert [
        f"no valid model in {empty}; /readyz answers 503 until one loads "
        "(the store is read again every 10 s)"
    ] == [r["message"] for r in warnings]


def poll_readyz(
    url: str, process: subprocess.Popen[bytes], until: Callable[[int | None], bool]
) -> int | None:
    """Poll /readyz (bounded in time) until ``until(status)``; the last status."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    status: int | None = None
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = client.get(f"{url}/readyz").status_code
            except httpx.TransportError:
                status = None
            if until(status):
                return status
            time.sleep(0.1)  # polling a condition with a deadline
    raise AssertionError(f"/readyz never satisfied the condition; last status {status}")
