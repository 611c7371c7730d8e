"""Log records for pipelines (JSON) and for people (console), and the start-up summary."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.logs import ConsoleFormatter
from service.logs import IterationBufferedHandler
from service.logs import JsonFormatter
from service.logs import direct_json_handler
from service.logs import json_info_line
from service.logs import resolve_format
from service.settings import Settings
from service.summary import changed_settings
from service.summary import server_url

SUMMARY = {
    "address": "http://127.0.0.1:5000",
    "workers": 2,
    "store": "/srv/model_store",
    "models": [{"name": "iris", "version": 2, "engine": "tree"}, {"name": "iris", "version": 1}],
    "docs": "http://127.0.0.1:5000/docs",
    "metrics": "http://127.0.0.1:5000/metrics",
    "readyz": "http://127.0.0.1:5000/readyz",
    "settings": {"PREDICTION_DEFAULT_MODEL": "iris"},
}


def record(
    name: str, message: str, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    made = logging.makeLogRecord(
        {"name": name, "msg": message, "levelno": level, "levelname": logging.getLevelName(level)}
    )
    made.created = 0.0
    for key, value in extra.items():
        setattr(made, key, value)
    return made


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


@pytest.mark.parametrize(
    ("log_format", "tty", "expected"),
    [
        ("auto", True, "console"),
        ("auto", False, "json"),
        ("json", True, "json"),
        ("console", False, "console"),
    ],
)
def test_resolve_format(log_format: str, tty: bool, expected: str) -> None:
    """auto is console on a terminal and JSON elsewhere; json and console are taken as said."""
    assert expected == resolve_format(log_format, FakeStream(tty))


def test_console_line_shows_message_and_extras() -> None:
    """A console line is the time, the level and the message, then extras as key=value."""
    line = ConsoleFormatter().format(record("service.models", "refused", logging.WARNING, why="x"))

    assert line.endswith(" WARNING refused  why=x")
    assert ":" == line[2]


def test_console_access_line() -> None:
    """An access record reads as method, route, status, duration, model version and rows."""
    access = record(
        "service.access",
        "POST /predict 200",
        request_id="abc",
        method="POST",
        route="/predict",
        status=200,
        duration_ms=1.234,
        model="iris",
        version=1,
        rows=3,
    )

    assert (
        ConsoleFormatter()
        .format(access)
        .endswith("INFO    POST /predict 200 1.2 ms iris v1, 3 rows id=abc")
    )


def test_console_summary_block() -> None:
    """The summary is drawn as a block: models (engine where known), URLs, changed settings."""
    text = ConsoleFormatter().format(
        record("service", "serving http://127.0.0.1:5000 with 2 workers", summary=SUMMARY)
    )

    assert [
        "INFO    serving http://127.0.0.1:5000 with 2 workers",
        "models    iris v2 (tree), iris v1  (store /srv/model_store)",
        "docs      http://127.0.0.1:5000/docs",
        "metrics   http://127.0.0.1:5000/metrics",
        "readiness http://127.0.0.1:5000/readyz",
        "settings  PREDICTION_DEFAULT_MODEL=iris",
    ] == [line[9:].strip() if i == 0 else line.strip() for i, line in enumerate(text.split("\n"))]


def test_json_summary_is_structured() -> None:
    """In JSON the summary is one object under "summary", beside the usual fields."""
    line = JsonFormatter().format(record("service", "serving", summary=SUMMARY))

    entry = json.loads(line)
    assert (SUMMARY, "serving", "service") == (entry["summary"], entry["message"], entry["logger"])


def test_changed_settings_hide_secrets_and_skip_defaults() -> None:
    """Only settings off their default are listed, the admin token as <hidden>."""
    settings = Settings(
        port=8080,
        model_store=Path("/m"),
        default_model="iris",
        max_wait_ms=2.0,
        admin_token="0123456789abcdef",
    )

    assert {
        "PREDICTION_ADMIN_TOKEN": "<hidden>",
        "PREDICTION_DEFAULT_MODEL": "iris",
        "PREDICTION_MAX_WAIT_MS": "2.0",
    } == changed_settings(settings)


@pytest.mark.parametrize(
    ("host", "url"),
    [("127.0.0.1", "http://127.0.0.1:5000"), ("::1", "http://[::1]:5000")],
)
def test_server_url(host: str, url: str) -> None:
    """IPv6 hosts are bracketed in URLs."""
    assert url == server_url(host, 5000)


class WriteCountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def buffered_handler() -> tuple[IterationBufferedHandler, WriteCountingStream]:
    stream = WriteCountingStream()
    handler = IterationBufferedHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler, stream


async def next_iteration() -> None:
    """Return once the loop has run every callback scheduled before this call (FIFO order)."""
    reached: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(reached.set_result, None)
    await reached


async def test_lines_logged_on_the_loop_are_written_together_in_its_next_iteration() -> None:
    """Info lines logged within one loop iteration wait, then go out in one write, in order."""
    handler, stream = buffered_handler()
    handler.handle(record("service.access", "first"))
    handler.handle(record("service.access", "second"))
    waiting = stream.getvalue()

    await next_iteration()

    assert ("", "first\nsecond\n", 1) == (waiting, stream.getvalue(), stream.writes)


async def test_a_warning_is_written_at_once_after_the_lines_waiting_before_it() -> None:
    """A warning does not wait for the loop, and the lines logged before it still come first."""
    handler, stream = buffered_handler()
    handler.handle(record("service.access", "served"))
    handler.handle(record("service.models", "refused", logging.WARNING))

    assert "served\nrefused\n" == stream.getvalue()


async def test_a_line_from_another_thread_is_written_at_once() -> None:
    """A worker or loader thread's record is written by that thread: no loop would write it."""
    handler, stream = buffered_handler()
    thread = threading.Thread(target=handler.handle, args=(record("service.loading", "loaded"),))
    thread.start()
    thread.join()

    assert "loaded\n" == stream.getvalue()


def test_without_a_running_loop_lines_are_written_at_once() -> None:
    """Outside an event loop (the supervisor, a CLI command) every line is written as logged."""
    handler, stream = buffered_handler()
    handler.handle(record("service", "serving"))

    assert "serving\n" == stream.getvalue()


async def test_flush_writes_the_waiting_lines() -> None:
    """flush() (what logging.shutdown calls at exit) writes the lines waiting for the loop."""
    handler, stream = buffered_handler()
    handler.write_line("last words")
    waiting = stream.getvalue()

    handler.flush()

    assert ("", "last words\n") == (waiting, stream.getvalue())


def test_direct_json_line_reads_as_the_json_formatter_line() -> None:
    """An access line written directly has the fields and values JsonFormatter gives a record."""
    extra: dict[str, object] = {"request_id": "abc", "status": 200, "duration_ms": 1.5}
    direct = json.loads(json_info_line("service.access", "POST /predict 200", extra))
    access = record("service.access", "POST /predict 200", request_id="abc", status=200)
    access.duration_ms = 1.5
    formatted = json.loads(JsonFormatter().format(access))

    assert {**formatted, "ts": None, "pid": None} == {**direct, "ts": None, "pid": None}


@pytest.fixture
def root_handlers() -> Iterator[list[logging.Handler]]:
    """The root logger's handlers, put back as they were after the test."""
    saved = logging.root.handlers[:]
    try:
        yield logging.root.handlers
    finally:
        logging.root.handlers[:] = saved


def json_handler() -> IterationBufferedHandler:
    handler = IterationBufferedHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    return handler


def test_direct_json_handler_is_the_only_json_handler(
    root_handlers: list[logging.Handler],
) -> None:
    """With the service's JSON set-up untouched, access lines may skip building a record."""
    handler = json_handler()
    root_handlers[:] = [handler]

    assert handler is direct_json_handler(logging.getLogger("service.access"))


def test_no_direct_path_when_another_handler_sees_the_records(
    root_handlers: list[logging.Handler],
) -> None:
    """A handler added by a user or a test harness gets real records: no direct path then."""
    root_handlers[:] = [json_handler(), logging.NullHandler()]

    assert direct_json_handler(logging.getLogger("service.access")) is None


def test_no_direct_path_for_console_lines(root_handlers: list[logging.Handler]) -> None:
    """Console lines are formatted from records; the direct path writes JSON only."""
    handler = IterationBufferedHandler(io.StringIO())
    handler.setFormatter(ConsoleFormatter())
    root_handlers[:] = [handler]

    assert direct_json_handler(logging.getLogger("service.access")) is None
