"""Tracing through the app, in both serving layers: spans, their parents and links, headers, logs.

Spans go to the SDK's in-memory exporter through a ``SimpleSpanProcessor``, which exports each
span as it ends, so a span is there as soon as the response is. The real export over OTLP/HTTP,
from a server process, is tested in ``test_tracing_export.py``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from quart import Quart

from service.http import create_app
from service.settings import Settings
from service.tracing import start_tracing
from tests.integration.conftest import serve_through
from tests.types import Client

pytestmark = pytest.mark.integration

SETOSA = [5.1, 3.5, 1.4, 0.2]
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"


@pytest.fixture(name="exporter")
def _exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(name="app")
async def _app(
    settings: Settings, layer: str, exporter: InMemorySpanExporter
) -> AsyncIterator[Quart]:
    tracing = start_tracing([SimpleSpanProcessor(exporter)])
    app = serve_through(create_app(settings, tracing=tracing), layer)
    async with app.test_app():
        yield app


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    spans = exporter.get_finished_spans()
    named = {span.name: span for span in spans}
    assert len(named) == len(spans), [span.name for span in spans]
    return named


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    value: int = span.context.span_id
    return value


class TestRequestSpans:
    async def test_caller_trace_is_continued_and_returned(
        self, client: Client, exporter: InMemorySpanExporter
    ) -> None:
        """A request's traceparent parents its server span, whose traceparent comes back."""
        response = await client.post(
            "/predict", json={"features": [SETOSA]}, headers={"traceparent": TRACEPARENT}
        )

        assert 200 == response.status_code
        server = by_name(exporter)["POST /predict"]
        assert server.context is not None
        assert int(TRACE_ID, 16) == server.context.trace_id
        assert server.parent is not None
        assert int(CALLER_SPAN_ID, 16) == server.parent.span_id
        assert f"00-{TRACE_ID}-{span_id(server):016x}-01" == response.headers["traceparent"]

    async def test_without_traceparent_the_server_starts_a_trace(
        self, client: Client, exporter: InMemorySpanExporter
    ) -> None:
        """A request without traceparent gets a root span, named in the response's traceparent."""
        response = await client.post("/predict", json={"features": [SETOSA]})

        server = by_name(exporter)["POST /predict"]
        assert server.parent is None
        assert server.context is not None
        version, trace_id, sent_span_id, flags = response.headers["traceparent"].split("-")
        assert "00" == version
        # Bit 0 is "sampled"; the SDK also sets bit 1, Trace Context Level 2's "random trace id".
        assert int(flags, 16) & 0x01
        assert f"{server.context.trace_id:032x}" == trace_id
        assert f"{span_id(server):016x}" == sent_span_id

    async def test_tracestate_is_kept(self, client: Client, exporter: InMemorySpanExporter) -> None:
        """The caller's tracestate travels with the trace."""
        await client.post(
            "/predict",
            json={"features": [SETOSA]},
            headers={"traceparent": TRACEPARENT, "tracestate": "vendor=abc,other=1"},
        )

        server = by_name(exporter)["POST /predict"]
        assert server.context is not None
        assert [("vendor", "abc"), ("other", "1")] == list(server.context.trace_state.items())

    async def test_server_span_names_route_status_model_rows_and_request_id(
        self, client: Client, exporter: InMemorySpanExporter
    ) -> None:
        """The server span carries the route template, status, model, version, rows and id."""
        await client.post(
            "/v2/models/iris/infer",
            json={
                "inputs": [
                    {"name": "x", "shape": [2, 4], "datatype": "FP64", "data": SETOSA + SETOSA}
                ]
            },
            headers={"X-Request-ID": "req-42"},
        )

        server = by_name(exporter)["POST /v2/models/<name>/infer"]
        assert {
            "http.request.method": "POST",
            "http.route": "/v2/models/<name>/infer",
            "url.path": "/v2/models/iris/infer",
            "http.response.status_code": 200,
            "prediction.model": "iris",
            "prediction.version": 1,
            "prediction.rows": 2,
            "prediction.request_id": "req-42",
        } == dict(server.attributes or {})

    async def test_queue_wait_and_model_call_belong_to_the_request(
        self, client: Client, exporter: InMemorySpanExporter
    ) -> None:
        """The queue wait is the server span's child; the model call is too, and links to it."""
        await client.post("/predict_proba", json={"features": [SETOSA]})

        spans = by_name(exporter)
        server, queue, call = spans["POST /predict_proba"], spans["queue wait"], spans["model call"]
        assert queue.parent is not None
        assert call.parent is not None
        assert span_id(server) == queue.parent.span_id
        assert span_id(server) == call.parent.span_id
        assert [span_id(server)] == [link.context.span_id for link in call.links]
        attributes = dict(call.attributes or {})
        assert "predict_proba" == attributes["prediction.output"]
        assert 1 == attributes["prediction.batch.rows"]
        assert attributes["prediction.engine"] in ("trees", "sklearn")

    async def test_unmatched_route_is_named_by_its_method(
        self, client: Client, exporter: InMemorySpanExporter
    ) -> None:
        """A request no route matched gets a span named by its method only, and a traceparent."""
        response = await client.get("/no/such/route")

        assert 404 == response.status_code
        assert "traceparent" in response.headers
        server = by_name(exporter)["GET"]
        assert "http.route" not in (server.attributes or {})

    async def test_client_error_leaves_the_span_status_unset(
        self, client: Client, exporter: InMemorySpanExporter
    ) -> None:
        """A 4xx answer leaves the span's status unset (the client's fault)."""
        response = await client.post("/predict", json={"features": [[1.0]]})

        assert 400 == response.status_code
        server = by_name(exporter)["POST /predict"]
        assert server.status.is_unset


async def test_client_gone_before_its_body_still_ends_the_span(
    settings: Settings, exporter: InMemorySpanExporter
) -> None:
    """On the ASGI path, a client hanging up before its body leaves a span marked client_gone."""
    app = create_app(settings, tracing=start_tracing([SimpleSpanProcessor(exporter)]))
    sent: list[object] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.disconnect"}

    async def send(message: object) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")],
        "root_path": "",
    }
    async with app.test_app():
        await app.asgi_app(scope, receive, send)  # type: ignore[arg-type]

    assert [] == sent
    server = by_name(exporter)["POST /predict"]
    assert (server.attributes or {})["prediction.client_gone"] is True


async def test_access_log_carries_the_trace_id(
    client: Client, exporter: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """The access-log record names the request id and the trace id of its span."""
    with caplog.at_level(logging.INFO, logger="service.access"):
        await client.post(
            "/predict",
            json={"features": [SETOSA]},
            headers={"traceparent": TRACEPARENT, "X-Request-ID": "req-7"},
        )

    (record,) = [r for r in caplog.records if r.name == "service.access"]
    assert TRACE_ID == record.trace_id  # type: ignore[attr-defined]
    assert "req-7" == record.request_id  # type: ignore[attr-defined]


async def test_tracing_off_sends_no_traceparent(settings: Settings, layer: str) -> None:
    """Without tracing, responses carry no traceparent and log records no trace id."""
    app = serve_through(create_app(settings), layer)
    async with app.test_app():
        response = await app.test_client().post(
            "/predict", json={"features": [SETOSA]}, headers={"traceparent": TRACEPARENT}
        )

    assert 200 == response.status_code
    assert "traceparent" not in response.headers
