"""Log records for pipelines (JSON) and for people (console), and the start-up summary."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from service.logs import ConsoleFormatter
from service.logs import JsonFormatter
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
