"""Distributed tracing with OpenTelemetry: the only module that imports it.

With ``PREDICTION_TRACING=true`` each serving process builds one :class:`Tracing`
(:func:`start_tracing`): a ``TracerProvider`` with a ``BatchSpanProcessor`` and the OTLP/HTTP
span exporter, all configured by the standard ``OTEL_*`` variables the SDK reads itself
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_SERVICE_NAME``, ``OTEL_TRACES_SAMPLER``,
``OTEL_BSP_SCHEDULE_DELAY``...; https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/).
Off, nothing imports this module (the SDK and exporter cost ~130 ms and ~12 MB to import), and
the HTTP layer and the batchers hold ``None`` where they would hold a tracer.

The spans of one request:

- ``{method} {route}``, kind SERVER: one per HTTP request, a child of the caller's W3C
  ``traceparent``/``tracestate`` when it sent one (https://www.w3.org/TR/trace-context/), else
  the root of a new trace. Its own ``traceparent`` goes back in the response.
- ``queue wait``: its child, from the batcher's intake until its last row left the queue.
- ``model call``: one per model call of a batcher, linked to the server span of every request
  whose rows it ran, so a trace shows who waited for whom. Its parent is the oldest sampled
  request of the batch, so the trace of a request that had the batch to itself holds the
  whole story.

Threads: spans are started and ended on the event loop's thread; the ``BatchSpanProcessor``'s
own thread exports them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Protocol

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import OTELResourceDetector
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link
from opentelemetry.trace import Span
from opentelemetry.trace import SpanKind
from opentelemetry.trace import Status
from opentelemetry.trace import StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service import __version__

__all__ = [
    "BatchTracer",
    "HeaderLookup",
    "RequestSpan",
    "Span",
    "Tracing",
    "start_tracing",
]

_SERVICE_NAME = "prediction-service"
_UNMATCHED = "<unmatched>"


class HeaderLookup(Protocol):
    """What request headers offer: first value by lower-case name, or None."""

    def get(self, key: str, /) -> str | None: ...


class _HeaderGetter(Getter[HeaderLookup]):
    """Reads ``traceparent``/``tracestate`` from either layer's headers (both ``get`` by name)."""

    def get(self, carrier: HeaderLookup, key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [value]

    def keys(self, carrier: HeaderLookup) -> list[str]:
        return ["traceparent", "tracestate"]


_GETTER = _HeaderGetter()


class RequestSpan:
    """The server span of one HTTP request."""

    __slots__ = ("ended", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.ended = False
        """Whether `end` or `abandon` ended it (the SDK warns about a second end)."""

    @property
    def traceparent(self) -> str:
        """This span's W3C ``traceparent``, for the response."""
        context = self.span.get_span_context()
        return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"

    @property
    def trace_id(self) -> str:
        """The trace id in hex, as trace backends show it (for the access log)."""
        return f"{self.span.get_span_context().trace_id:032x}"

    def end(self, status: int, model: str | None, version: int | None, rows: int | None) -> None:
        """Record how the request was answered and end the span."""
        span = self.span
        span.set_attribute("http.response.status_code", status)
        if model is not None:
            span.set_attribute("prediction.model", model)
        if version is not None:
            span.set_attribute("prediction.version", version)
        if rows is not None:
            span.set_attribute("prediction.rows", rows)
        if status >= 500:
            # HTTP semantic conventions: only 5xx marks a server span as failed.
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR))
        self.ended = True
        span.end()

    def abandon(self) -> None:
        """End the span, unless ended, of a request whose client hung up before its answer."""
        if not self.ended:
            self.ended = True
            self.span.set_attribute("prediction.client_gone", True)
            self.span.end()


class BatchTracer:
    """The queue-wait and model-call spans of one batcher (one model version's output)."""

    __slots__ = ("_attributes", "_tracer")

    def __init__(self, tracer: trace.Tracer, attributes: dict[str, str | int]) -> None:
        self._tracer = tracer
        self._attributes = attributes

    def queued(self, request: RequestSpan, rows: int) -> Span:
        """Start the ``queue wait`` span of a request whose ``rows`` were just queued."""
        return self._tracer.start_span(
            "queue wait",
            context=trace.set_span_in_context(request.span),
            attributes={**self._attributes, "prediction.rows": rows},
        )

    def dequeued(self, span: Span, outcome: str | None = None) -> None:
        """End a ``queue wait`` span: its last row was taken, or it left the queue (outcome)."""
        if outcome is not None:
            span.set_attribute("prediction.outcome", outcome)
        span.end()

    def model_call(
        self, served: Sequence[tuple[RequestSpan, int]], rows: int, *, inline: bool
    ) -> Span:
        """Start the span of one model call on ``rows`` rows for ``served`` (span, its rows)."""
        parent = next(
            (span for span, _ in served if span.span.get_span_context().trace_flags.sampled),
            served[0][0],
        )
        return self._tracer.start_span(
            "model call",
            context=trace.set_span_in_context(parent.span),
            attributes={
                **self._attributes,
                "prediction.batch.rows": rows,
                "prediction.batch.requests": len(served),
                "prediction.batch.inline": inline,
            },
            links=[
                Link(span.span.get_span_context(), {"prediction.rows": n_rows})
                for span, n_rows in served
            ],
        )

    def model_returned(self, span: Span, error: BaseException | None) -> None:
        """End a model-call span; ``error`` is what the call raised (or its wrong output)."""
        if error is not None:
            span.set_attribute("error.type", type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR))
        span.end()


class Tracing:
    """One process's tracer: starts request spans and builds each batcher's `BatchTracer`."""

    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("service", __version__)
        self._propagator = TraceContextTextMapPropagator()

    def start_request(
        self, method: str, route: str, path: str, headers: HeaderLookup, request_id: str
    ) -> RequestSpan:
        """Start the server span of a request, continuing the caller's trace if it sent one."""
        matched = route != _UNMATCHED
        attributes: dict[str, str] = {
            "http.request.method": method,
            "url.path": path,
            "prediction.request_id": request_id,
        }
        if matched:
            attributes["http.route"] = route
        span = self._tracer.start_span(
            f"{method} {route}" if matched else method,
            context=self._propagator.extract(headers, getter=_GETTER),
            kind=SpanKind.SERVER,
            attributes=attributes,
        )
        return RequestSpan(span)

    def batches(self, model: str, version: int, output: str, engine: str) -> BatchTracer:
        """The tracer of the batcher of ``model`` ``version``'s ``output``."""
        return BatchTracer(
            self._tracer,
            {
                "prediction.model": model,
                "prediction.version": version,
                "prediction.output": output,
                "prediction.engine": engine,
            },
        )

    def shutdown(self) -> None:
        """Export what is buffered and stop; blocks up to the exporter's time-out."""
        self._provider.shutdown()


def start_tracing(processors: Iterable[SpanProcessor] | None = None) -> Tracing:
    """This process's tracing, exporting over OTLP/HTTP as the ``OTEL_*`` variables say.

    Call it in each serving process (workers are separate processes, each with its own export
    thread). ``processors`` replaces the OTLP export (tests pass an in-memory one).
    """
    defaults = Resource.create(
        {"service.name": _SERVICE_NAME, "service.version": __version__, "process.pid": os.getpid()}
    )
    # Resource.create lets its arguments win over OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES;
    # merging the environment's detector on top makes the operator's variables win instead.
    resource = defaults.merge(OTELResourceDetector().detect())
    # Shut down on drain by the app, not at interpreter exit, when a worker may be gone.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for processor in processors or (BatchSpanProcessor(OTLPSpanExporter()),):
        provider.add_span_processor(processor)
    return Tracing(provider)
