"""Logging set-up and how records look: JSON lines for log pipelines, readable lines for people.

``PREDICTION_LOG_FORMAT=auto`` picks console lines when stderr is a terminal and JSON otherwise
(containers, CI, a pipe). The supervisor imports this module, so it imports nothing heavy.

Threads: :class:`IterationBufferedHandler` is called from any thread (the event loop's, the
loader's, worker threads); its buffer is guarded by the handler's lock, and only the thread
running an event loop leaves lines in it for that loop to write.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import sys
import time
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Literal
from typing import TextIO

import orjson

__all__ = [
    "SUMMARY_FIELD",
    "ConsoleFormatter",
    "IterationBufferedHandler",
    "JsonFormatter",
    "configure_logging",
    "resolve_format",
]

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({})))
# LogRecord.__init__ sets its attributes before makeRecord adds the extras, so they come first.
_N_RECORD_FIELDS = len(_RECORD_FIELDS)
ACCESS_LOGGER = "service.access"
SUMMARY_FIELD = "summary"
"""The ``extra=`` key of the start-up summary record: a dict, drawn as a block on a console."""
# The label column of the summary's block on a console.
_LABEL_WIDTH = 10


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    # Every access-log record goes through here; skipping the standard attributes by position
    # halves the cost (the filter still applies, for records built by makeLogRecord).
    return {
        key: value
        for key, value in itertools.islice(vars(record).items(), _N_RECORD_FIELDS, None)
        if key not in _RECORD_FIELDS and not key.startswith("_")
    }


@functools.lru_cache(maxsize=2)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _utc_timestamp(created: float) -> str:
    """``datetime.isoformat(timespec="milliseconds")`` in UTC, with the seconds formatted once."""
    second = int(created)
    micros = round((created - second) * 1e6)  # as datetime.fromtimestamp rounds
    if micros == 1_000_000:
        second, micros = second + 1, 0
    return f"{_utc_second(second)}.{micros // 1000:03d}+00:00"


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"ts", "level", "logger", "message", **extra}`` in one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _json_entry(
            record.created,
            record.levelname.lower(),
            record.name,
            record.getMessage(),
            record.process,
        )
        entry.update(_extras(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def _json_entry(
    created: float, level: str, logger: str, message: str, pid: int | None
) -> dict[str, object]:
    return {
        "ts": _utc_timestamp(created),
        "level": level,
        "logger": logger,
        "message": message,
        # With several workers, the pid tells which process wrote the line.
        "pid": pid,
    }


def json_info_line(logger: str, message: str, extra: dict[str, object]) -> str:
    """The line :class:`JsonFormatter` writes for an INFO record of ``logger`` logged now."""
    entry = _json_entry(time.time(), "info", logger, message, os.getpid())
    entry.update(extra)
    return orjson.dumps(entry, default=str).decode()


def direct_json_handler(logger: logging.Logger) -> IterationBufferedHandler | None:
    """The handler that alone writes ``logger``'s INFO records, as JSON, if nothing else sees them.

    That is :func:`configure_logging`'s set-up with the JSON format, untouched: then a caller may
    hand it :func:`json_info_line` lines directly, skipping the record, the logger chain and the
    formatter (a third of an access-log line's cost). Any other set-up (a test's capture
    handler, a filter, the console format, handlers an embedding program added) gives None, and
    records go through ``logger`` as usual.
    """
    if logger.filters:
        return None
    root = logging.root
    node: logging.Logger | None = logger
    while node is not None and node is not root:
        if node.handlers or not node.propagate:
            return None
        node = node.parent
    handlers = root.handlers
    if len(handlers) != 1:
        return None
    handler = handlers[0]
    if (
        type(handler) is not IterationBufferedHandler
        or handler.filters
        or handler.level > logging.INFO
        or type(handler.formatter) is not JsonFormatter
    ):
        return None
    return handler


class ConsoleFormatter(logging.Formatter):
    """One line a person reads at a glance: ``12:00:01 INFO    message  key=value ...``.

    Access-log records read ``POST /predict 200 1.2 ms iris v1, 1 row``; the start-up summary is
    the one record drawn as a short block. Tracebacks follow their line, as Python prints them.
    """

    def format(self, record: logging.LogRecord) -> str:
        clock = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extras = _extras(record)
        summary = extras.pop(SUMMARY_FIELD, None)
        if record.name == ACCESS_LOGGER:
            text = _access_line(record.getMessage(), extras)
        else:
            shown = " ".join(f"{key}={value}" for key, value in extras.items() if value is not None)
            text = f"{record.getMessage()}  {shown}" if shown else record.getMessage()
        prefix = f"{clock} {record.levelname:<7} "
        line = prefix + text
        if isinstance(summary, dict):
            line += "".join(f"\n{' ' * len(prefix)}{row}" for row in _summary_rows(summary))
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _access_line(message: str, extras: dict[str, Any]) -> str:
    parts = [message]
    if extras.get("duration_ms") is not None:
        parts.append(f"{extras['duration_ms']:.1f} ms")
    if extras.get("model") is not None:
        served = f"{extras['model']} v{extras['version']}"
        rows = extras.get("rows")
        parts.append(f"{served}, {rows} row{'' if rows == 1 else 's'}" if rows else served)
    if extras.get("request_id"):
        parts.append(f"id={extras['request_id']}")
    if extras.get("trace_id"):
        parts.append(f"trace={extras['trace_id']}")
    return " ".join(parts)


def _summary_rows(summary: dict[str, Any]) -> list[str]:
    models = summary.get("models") or []
    served = ", ".join(
        f"{m['name']} v{m['version']}" + (f" ({m['engine']})" if m.get("engine") else "")
        for m in models
    )
    rows = [("models", f"{served or 'none yet'}  (store {summary['store']})")]
    rows += [(label, summary[key]) for label, key in _SUMMARY_URLS]
    changed = summary.get("settings") or {}
    if changed:
        rows.append(("settings", " ".join(f"{key}={value}" for key, value in changed.items())))
    return [f"{label:<{_LABEL_WIDTH}}{value}" for label, value in rows]


_SUMMARY_URLS = (("docs", "docs"), ("metrics", "metrics"), ("readiness", "readyz"))


def resolve_format(log_format: str, stream: TextIO) -> Literal["json", "console"]:
    """The format ``log_format`` means on ``stream``: ``auto`` is console on a terminal only."""
    if log_format == "json":
        return "json"
    if log_format == "console":
        return "console"
    try:
        return "console" if stream.isatty() else "json"
    except ValueError:  # a closed stream
        return "json"


class IterationBufferedHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the lines of one event-loop iteration with one write.

    Under load a worker answers dozens of requests per loop iteration, each with an access-log
    line, and a write(2) per line cost more CPU than the rest of the line's logging (the bench's
    CPU per request fell by ~40 us at 64 connections without it). A record below WARNING
    emitted on a thread that runs an event loop waits until that loop's next iteration; any other
    record (a warning or worse, a record from a loader or worker thread, a process with no loop)
    is written at once, after the lines waiting before it, so lines keep their order. What waits
    is at most one iteration's lines; :meth:`flush` (``logging.shutdown`` at exit) writes them.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._flush_scheduled_on: object = None
        """The loop that will write the pending lines, if one will."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._schedule(_running_loop() if record.levelno < logging.WARNING else None)

    def _schedule(self, loop: Any) -> None:
        """Have ``loop`` write the pending lines in its next iteration; no loop: write them now."""
        if loop is None:
            self._write_pending()
        elif self._flush_scheduled_on is not loop:
            # A loop that closed before writing (tests run many) leaves its lines to this one.
            self._flush_scheduled_on = loop
            loop.call_soon(self.flush)

    def write_line(self, line: str) -> None:
        """Write ``line`` (a formatted record, without its terminator) as :meth:`emit` would."""
        with self.lock:  # type: ignore[union-attr]  # Handler.createLock always sets it
            self._pending.append(line + self.terminator)
            self._schedule(_running_loop())

    def flush(self) -> None:
        """Write the waiting lines and flush the stream."""
        with self.lock:  # type: ignore[union-attr]  # Handler.createLock always sets it
            self._write_pending()

    def _write_pending(self) -> None:
        self._flush_scheduled_on = None
        if not self._pending:
            super().flush()
            return
        text = "".join(self._pending)
        self._pending.clear()
        try:
            self.stream.write(text)
            super().flush()
        except Exception:
            # As StreamHandler.emit: a broken stream must not break the request that logged.
            self.handleError(logging.makeLogRecord({"msg": text.rstrip()}))


def _running_loop() -> Any:
    """The event loop running on this thread, or None."""
    # Only a process that imported asyncio can be running a loop; the supervisor never does.
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _HypercornBanner(logging.Filter):
    """Drops Hypercorn's "Running on ..." line: the start-up summary says where, once."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Running on ")


def configure_logging(level: str, log_format: str = "auto") -> None:
    """Send every logger's records to stderr at ``level``, in ``log_format`` (auto|json|console)."""
    handler = IterationBufferedHandler(sys.stderr)
    chosen = resolve_format(log_format, sys.stderr)
    handler.setFormatter(ConsoleFormatter() if chosen == "console" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Hypercorn's own loggers would otherwise print plain text beside ours.
    for name in ("hypercorn.error", "hypercorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    banner = logging.getLogger("hypercorn.error")
    banner.filters[:] = [f for f in banner.filters if not isinstance(f, _HypercornBanner)]
    banner.addFilter(_HypercornBanner())
