"""The bench's OTLP/HTTP receiver, fed by the OpenTelemetry SDK's own exporter."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export import SpanExportResult

from bench.otlp import OtlpSink
from bench.otlp import SinkCounts


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_sink_accepts_the_sdks_exports_and_counts_their_spans(
    compression: Compression,
) -> None:
    """Three spans exported one by one arrive as three exports of one span each, answered 200."""
    with OtlpSink() as sink:
        exporter = OTLPSpanExporter(endpoint=f"{sink.endpoint}/v1/traces", compression=compression)
        results: list[SpanExportResult] = []

        class Recording(SimpleSpanProcessor):
            def on_end(self, span: object) -> None:
                results.append(exporter.export([span]))  # type: ignore[list-item]

        provider = TracerProvider()
        provider.add_span_processor(Recording(exporter))
        tracer = provider.get_tracer("test")
        for name in ("a", "b", "c"):
            tracer.start_span(name).end()
        counts = sink.counts
        provider.shutdown()

    assert results == [SpanExportResult.SUCCESS] * 3
    assert counts.exports == 3
    assert counts.spans == 3
    assert counts.bytes > 0


def test_the_sink_answers_404_elsewhere_and_counts_nothing() -> None:
    """Only /v1/traces is an export."""
    with OtlpSink() as sink:
        request = urllib.request.Request(f"{sink.endpoint}/v1/metrics", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(request, timeout=10)
        raised.value.close()
        counts = sink.counts

    assert raised.value.code == 404
    assert counts == SinkCounts(exports=0, spans=0, bytes=0)
