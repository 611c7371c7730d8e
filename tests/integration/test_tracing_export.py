"""Traces exported by a real server process over OTLP/HTTP to a receiver on 127.0.0.1.

The receiver is a small thread server that accepts ``POST /v1/traces`` and decodes the body with
``opentelemetry-proto``'s ``ExportTraceServiceRequest``, as a collector would. Tests wait on its
queue with a bounded time-out; "nothing exported" is asserted after the server process exited,
when no export can come any more.
"""

from __future__ import annotations

import gzip
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.helpers import serve_process

pytestmark = pytest.mark.integration

WAIT_S = 30.0
SETOSA = [5.1, 3.5, 1.4, 0.2]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver decoded it: ids in hex, attributes as Python values."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, object]
    links: list[tuple[str, str, dict[str, object]]]
    """(trace id, span id, attributes) of each link."""
    resource: dict[str, object]


def _value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind is not None else None


def _attributes(pairs: object) -> dict[str, object]:
    return {pair.key: _value(pair.value) for pair in pairs}  # type: ignore[attr-defined]


class OtlpReceiver:
    """Accepts OTLP/HTTP protobuf trace exports on 127.0.0.1; every span goes into ``spans``."""

    def __init__(self) -> None:
        self.spans: queue.Queue[ReceivedSpan] = queue.Queue()
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.paths.append(self.path)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource_spans in request.resource_spans:
                    resource = _attributes(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            receiver.spans.put(
                                ReceivedSpan(
                                    name=span.name,
                                    trace_id=span.trace_id.hex(),
                                    span_id=span.span_id.hex(),
                                    parent_span_id=span.parent_span_id.hex(),
                                    kind=span.kind,
                                    attributes=_attributes(span.attributes),
                                    links=[
                                        (
                                            link.trace_id.hex(),
                                            link.span_id.hex(),
                                            _attributes(link.attributes),
                                        )
                                        for link in span.links
                                    ],
                                    resource=resource,
                                )
                            )
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:
                pass  # the test's output is for failures

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(WAIT_S)

    def take_trace(self, trace_id: str, count: int) -> list[ReceivedSpan]:
        """The next ``count`` spans of trace ``trace_id`` (others, such as the start-up's
        readiness polls, are skipped), waiting at most ``WAIT_S`` for each span."""
        taken: list[ReceivedSpan] = []
        skipped = 0
        while len(taken) < count and skipped < 1000:
            try:
                span = self.spans.get(timeout=WAIT_S)
            except queue.Empty:
                raise AssertionError(
                    f"only {len(taken)} of {count} spans arrived: {taken}"
                ) from None
            if span.trace_id == trace_id:
                taken.append(span)
            else:
                skipped += 1
        return taken

    def drained(self) -> list[ReceivedSpan]:
        """Whatever has arrived, without waiting."""
        spans = []
        while not self.spans.empty():
            spans.append(self.spans.get_nowait())
        return spans


@pytest.fixture(name="receiver")
def _receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def tracing_env(receiver: OtlpReceiver, **extra: str) -> dict[str, str]:
    return {
        "PREDICTION_TRACING": "true",
        "PREDICTION_LOG_FORMAT": "json",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_SERVICE_NAME": "traced-test",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        **extra,
    }


def test_one_request_exports_its_three_spans(
    tmp_path: Path, store_root: Path, receiver: OtlpReceiver
) -> None:
    """A traced request exports server, queue-wait and model-call spans, wired to its caller."""
    with serve_process(
        tmp_path, "--model-store", str(store_root), env=tracing_env(receiver)
    ) as server:
        response = httpx.post(
            f"{server.url}/predict?model=iris",
            json={"features": [SETOSA]},
            headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01", "X-Request-ID": "r-1"},
        )
        spans = {span.name: span for span in receiver.take_trace(TRACE_ID, 3)}
        assert 0 == server.stop()
        log = server.log()

    assert 200 == response.status_code
    assert {"POST /predict", "queue wait", "model call"} == set(spans)
    request, queued, call = spans["POST /predict"], spans["queue wait"], spans["model call"]
    assert {TRACE_ID} == {request.trace_id, queued.trace_id, call.trace_id}
    assert CALLER_SPAN_ID == request.parent_span_id
    assert f"00-{TRACE_ID}-{request.span_id}-01" == response.headers["traceparent"]
    assert request.span_id == queued.parent_span_id == call.parent_span_id
    assert [(TRACE_ID, request.span_id, {"prediction.rows": 1})] == call.links
    assert 2 == request.kind  # SPAN_KIND_SERVER
    assert {
        "http.request.method": "POST",
        "http.route": "/predict",
        "url.path": "/predict",
        "http.response.status_code": 200,
        "prediction.model": "iris",
        "prediction.version": 1,
        "prediction.rows": 1,
        "prediction.request_id": "r-1",
    } == request.attributes
    assert {"prediction.model": "iris", "prediction.output": "predict"}.items() <= (
        call.attributes.items()
    )
    assert "traced-test" == request.resource["service.name"]
    assert {"/v1/traces"} == set(receiver.paths)
    access = [
        record
        for record in map(json.loads, log.splitlines())
        if record.get("logger") == "service.access" and record["route"] == "/predict"
    ]
    assert [("r-1", TRACE_ID)] == [(record["request_id"], record["trace_id"]) for record in access]


def test_tracing_off_exports_nothing(
    tmp_path: Path, store_root: Path, receiver: OtlpReceiver
) -> None:
    """Without PREDICTION_TRACING, nothing reaches the receiver, even with an endpoint set."""
    env = tracing_env(receiver)
    del env["PREDICTION_TRACING"]
    with serve_process(tmp_path, "--model-store", str(store_root), env=env) as server:
        for _ in range(5):
            response = httpx.post(f"{server.url}/predict?model=iris", json={"features": [SETOSA]})
            assert 200 == response.status_code
            assert "traceparent" not in response.headers
        assert 0 == server.stop()

    assert [] == receiver.drained()
    assert [] == receiver.paths


def test_each_worker_flushes_its_spans_on_drain(
    tmp_path: Path, store_root: Path, receiver: OtlpReceiver
) -> None:
    """With two workers and a schedule delay longer than the test, SIGTERM still exports all."""
    requests = 6
    env = tracing_env(receiver, PREDICTION_WORKERS="2", OTEL_BSP_SCHEDULE_DELAY="600000")
    with serve_process(tmp_path, "--model-store", str(store_root), env=env) as server:
        for _ in range(requests):
            # A new connection each time, so the kernel may hand it to either worker.
            response = httpx.post(f"{server.url}/predict?model=iris", json={"features": [SETOSA]})
            assert 200 == response.status_code
        assert 0 == server.stop()

    spans = [span for span in receiver.drained() if span.name != "GET /readyz"]
    server_spans = [span for span in spans if span.name == "POST /predict"]
    assert requests == len(server_spans)
    assert 3 * requests == len(spans)
