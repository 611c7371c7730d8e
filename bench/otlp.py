"""A throwaway OTLP/HTTP trace receiver on 127.0.0.1, where (a) with tracing on exports its spans.

It answers every ``POST /v1/traces`` with 200 and an empty ``ExportTraceServiceResponse``, as a
collector that accepted everything does, and counts what arrived (exports, bytes and spans),
so the report can show that the traced server really exported. It runs in a thread of the
bench's process, not in the server's process tree, so the server's CPU per request counts the
spans' creation and export but not their reception (as with a collector on another machine).
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Final

from bench.servers import HOST

__all__ = ["OtlpSink", "SinkCounts", "count_spans"]

_TRACES_PATH: Final = "/v1/traces"
_STOP_TIMEOUT_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class SinkCounts:
    """What the sink has received so far."""

    exports: int
    """Export requests answered 200."""
    spans: int
    bytes: int
    """Body bytes as sent (compressed, when the exporter compresses)."""


def count_spans(body: bytes) -> int:
    """The number of spans in one OTLP/HTTP protobuf export body.

    Raises:
        google.protobuf.message.DecodeError: not an ``ExportTraceServiceRequest``.
    """
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    return sum(
        len(scope.spans) for resource in request.resource_spans for scope in resource.scope_spans
    )


class OtlpSink:
    """Receives OTLP/HTTP trace exports until the ``with`` block ends; ``endpoint`` is its URL."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._exports = self._spans = self._bytes = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as the exporter's session expects; every reply states its length.
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != _TRACES_PATH:
                    self._reply(404)
                    return
                raw = (
                    gzip.decompress(body)
                    if self.headers.get("Content-Encoding") == "gzip"
                    else body
                )
                sink._received(len(body), count_spans(raw))
                self._reply(200)

            def _reply(self, status: int) -> None:
                # An empty ExportTraceServiceResponse serializes to no bytes at all.
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # one line per export would drown the bench's output

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://{HOST}:{self._server.server_address[1]}"
        """``OTEL_EXPORTER_OTLP_ENDPOINT`` for a server exporting here."""
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-sink", daemon=True
        )

    def _received(self, size: int, spans: int) -> None:
        with self._lock:
            self._exports += 1
            self._spans += spans
            self._bytes += size

    @property
    def counts(self) -> SinkCounts:
        """Totals so far."""
        with self._lock:
            return SinkCounts(exports=self._exports, spans=self._spans, bytes=self._bytes)

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(_STOP_TIMEOUT_S)
