"""One HTTP request from arrival to its access-log line: :class:`Exchange`.

Every request gets one, whichever layer serves it: the ASGI prediction path
(``service.http.fastpath``) builds it from the ASGI scope, and a Quart ``before_request`` hook
builds it for every other route (it lives on ``g`` as ``g.exchange``). The prediction routes
read the request through it and record on it which model version answered how many rows;
:func:`finish` turns it into the ``prediction_http_*`` metrics and the access-log record. With
tracing on it carries the request's server span (``service.tracing``), which :func:`finish`
ends; off, ``span`` stays ``None`` and nothing else changes.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from random import getrandbits
from typing import TYPE_CHECKING
from typing import Protocol

from quart import g

from service.http.state import AppState
from service.logs import ACCESS_LOGGER
from service.logs import direct_json_handler
from service.logs import json_info_line

if TYPE_CHECKING:  # only a process that traces imports OpenTelemetry (service.tracing)
    from service.tracing import RequestSpan

__all__ = [
    "REQUEST_ID_HEADER",
    "TRACEPARENT_HEADER",
    "UNMATCHED_ROUTE",
    "Exchange",
    "Lookup",
    "current_exchange",
    "finish",
    "new_request_id",
    "request_id_from",
]

access_log = logging.getLogger(ACCESS_LOGGER)

REQUEST_ID_HEADER = "X-Request-ID"
# W3C Trace Context: the server span's id goes back to the caller (with tracing on).
TRACEPARENT_HEADER = "traceparent"
# Echo only ids that are safe in logs and headers; anything else gets a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# The route label of requests no route matched: a constant, so paths never become labels.
UNMATCHED_ROUTE = "<unmatched>"


class Lookup(Protocol):
    """Read access to headers (by lower-case name) or query parameters: first value or None."""

    def get(self, key: str, /) -> str | None: ...


async def _no_body() -> bytes:
    return b""


@dataclass(slots=True, eq=False)
class Exchange:
    """What one request asked and what answered it, for the routes, the metrics and the log."""

    method: str
    route: str
    """The route's template (``/v2/models/<name>/infer``), or ``UNMATCHED_ROUTE``."""
    request_id: str
    started_s: float
    """``time.perf_counter()`` at arrival."""
    headers: Lookup
    query: Lookup
    read_body: Callable[[], Awaitable[bytes]] = _no_body
    """Reads the whole body once, within the body size limit and time-out."""
    model: str | None = None
    version: int | None = None
    rows: int | None = None
    span: RequestSpan | None = None
    """The request's server span when tracing is on."""

    def served_by(self, name: str, version: int) -> None:
        """Record the model version that answers (or refuses) this request."""
        self.model, self.version = name, version


def current_exchange() -> Exchange:
    """The exchange of the request Quart is handling (set by the app's ``before_request`` hook)."""
    exchange: Exchange = g.exchange
    return exchange


def request_id_from(sent: str | None) -> str:
    """The request's id: the client's ``X-Request-ID`` when it is safe to echo, else a new one."""
    if sent and _REQUEST_ID.fullmatch(sent):
        return sent
    return new_request_id()


def new_request_id() -> str:
    """A random version-4 UUID as 32 hex digits, as ``uuid.uuid4().hex`` formats one.

    The bits come from ``random`` (seeded from ``os.urandom``, reseeded in forked children), not
    from ``os.urandom`` per call: a request id names a request, it guards nothing, and the
    system call per request showed as 8% of the prediction path's samples under load (py-spy,
    64 concurrent requests in process), though it times at 0.54 us against 0.39 alone.
    """
    bits = getrandbits(128) & _UUID4_CLEAR | _UUID4_SET
    return f"{bits:032x}"


# uuid.UUID(version=4): the variant bits (10) and the version nibble (4).
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def finish(state: AppState, exchange: Exchange, status: int) -> None:
    """Count the answered request and write its access-log record."""
    duration_s = time.perf_counter() - exchange.started_s
    state.metrics.observe_http(exchange.method, exchange.route, status, duration_s)
    span = exchange.span
    if span is not None:
        span.end(status, exchange.model, exchange.version, exchange.rows)
    if state.settings.access_log and access_log.isEnabledFor(logging.INFO):
        extra: dict[str, object] = {
            "request_id": exchange.request_id,
            "method": exchange.method,
            "route": exchange.route,
            "status": status,
            "duration_ms": round(duration_s * 1000, 3),
            "model": exchange.model,
            "version": exchange.version,
            "rows": exchange.rows,
        }
        if span is not None:
            # The same id as in the trace backend, so a log line leads to its trace.
            extra["trace_id"] = span.trace_id
        handler = direct_json_handler(access_log)
        if handler is not None:
            message = f"{exchange.method} {exchange.route} {status}"
            handler.write_line(json_info_line(ACCESS_LOGGER, message, extra))
            return
        # makeRecord + handle is what Logger.info does, minus the caller lookup (a stack walk
        # for a file and line no formatter of ours prints).
        access_log.handle(
            access_log.makeRecord(
                ACCESS_LOGGER,
                logging.INFO,
                __file__,
                0,
                "%s %s %d",
                (exchange.method, exchange.route, status),
                None,
                extra=extra,
            )
        )
