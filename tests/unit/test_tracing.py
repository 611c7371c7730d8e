"""service.tracing with the batcher: who waited for whom, as queue-wait and model-call spans.

Spans go to the SDK's in-memory exporter (exported as each ends). The model blocks in its thread
on a ``threading.Event`` the test sets, so requests pile up behind a running batch and the next
batch takes them together; no test waits on time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.batching import MicroBatcher
from service.errors import DeadlineExceededError
from service.errors import ModelInputError
from service.tracing import RequestSpan
from service.tracing import Tracing
from service.tracing import start_tracing

GUARD_S = 10.0
"""Bounds every wait for a signal, only so that a bug fails a test instead of hanging it."""


class GatedModel:
    """Sums rows; its first call blocks until ``release`` (so later requests queue up)."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.gate = threading.Event()
        self._calls = 0

    def __call__(self, rows: NDArray[Any]) -> NDArray[Any]:
        self._calls += 1
        if self._calls == 1:
            self.started.set()
            assert self.gate.wait(GUARD_S)
        if (rows < 0).any():
            raise ValueError("negative")
        result: NDArray[Any] = rows.sum(axis=1)
        return result


@pytest.fixture(name="exporter")
def _exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(name="tracing")
def _tracing(exporter: InMemorySpanExporter) -> Tracing:
    return start_tracing([SimpleSpanProcessor(exporter)])


@pytest.fixture(name="model")
def _model() -> GatedModel:
    return GatedModel()


@pytest.fixture(name="batcher")
async def _batcher(tracing: Tracing, model: GatedModel) -> AsyncIterator[MicroBatcher]:
    batcher = MicroBatcher(
        model,
        max_batch_rows=8,
        max_queue_rows=64,
        tracer=tracing.batches("m", 3, "predict", "sklearn"),
    )
    batcher.start()
    yield batcher
    model.gate.set()
    await batcher.aclose(GUARD_S)


def request_span(tracing: Tracing, request_id: str) -> RequestSpan:
    return tracing.start_request("POST", "/predict", "/predict", {}, request_id)


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def ids(span: RequestSpan) -> int:
    value: int = span.span.get_span_context().span_id
    return value


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.to_thread(event.wait, GUARD_S)


class TestSpans:
    async def test_requests_sharing_a_batch_are_all_linked_from_its_model_call(
        self,
        batcher: MicroBatcher,
        model: GatedModel,
        tracing: Tracing,
        exporter: InMemorySpanExporter,
    ) -> None:
        """A model call serving two queued requests links to both, parented by the oldest."""
        first = request_span(tracing, "first")
        blocking = asyncio.ensure_future(batcher.submit(np.ones((1, 2)), span=first))
        await wait_for(model.started)
        a, b = request_span(tracing, "a"), request_span(tracing, "b")
        waiting = [
            asyncio.ensure_future(batcher.submit(np.ones((2, 2)), span=a)),
            asyncio.ensure_future(batcher.submit(np.ones((3, 2)), span=b)),
        ]
        for _ in range(100):  # bounded: the two submits queue their rows on their first step
            if batcher.queued_rows == 5:
                break
            await asyncio.sleep(0)
        assert 5 == batcher.queued_rows
        model.gate.set()
        await asyncio.gather(blocking, *waiting)

        calls = named(exporter, "model call")
        assert 2 == len(calls)
        shared = next(call for call in calls if len(call.links) == 2)
        assert [(ids(a), {"prediction.rows": 2}), (ids(b), {"prediction.rows": 3})] == [
            (link.context.span_id, dict(link.attributes or {})) for link in shared.links
        ]
        assert shared.parent is not None
        assert ids(a) == shared.parent.span_id
        attributes = dict(shared.attributes or {})
        assert 5 == attributes["prediction.batch.rows"]
        assert 2 == attributes["prediction.batch.requests"]
        assert ("m", 3, "predict", "sklearn") == tuple(
            attributes[f"prediction.{key}"] for key in ("model", "version", "output", "engine")
        )

    async def test_queue_wait_is_a_child_ending_when_its_rows_are_taken(
        self,
        batcher: MicroBatcher,
        model: GatedModel,
        tracing: Tracing,
        exporter: InMemorySpanExporter,
    ) -> None:
        """Each request's queue wait is its child and ends before its model call starts."""
        model.gate.set()
        span = request_span(tracing, "r")
        await batcher.submit(np.ones((1, 2)), span=span)

        (queued,) = named(exporter, "queue wait")
        (call,) = named(exporter, "model call")
        assert queued.parent is not None
        assert ids(span) == queued.parent.span_id
        assert queued.end_time is not None
        assert call.start_time is not None
        assert queued.end_time <= call.start_time

    async def test_request_that_times_out_in_the_queue_ends_its_wait_as_timeout(
        self,
        batcher: MicroBatcher,
        model: GatedModel,
        tracing: Tracing,
        exporter: InMemorySpanExporter,
    ) -> None:
        """A request whose deadline passes while queued ends its queue wait marked timeout."""
        blocking = asyncio.ensure_future(batcher.submit(np.ones((1, 2))))
        await wait_for(model.started)
        with pytest.raises(DeadlineExceededError):
            await batcher.submit(np.ones((1, 2)), timeout_s=0.01, span=request_span(tracing, "t"))
        model.gate.set()
        await blocking

        (queued,) = named(exporter, "queue wait")
        assert "timeout" == (queued.attributes or {})["prediction.outcome"]
        assert [] == named(exporter, "model call")  # the untraced request made no span

    async def test_failed_model_call_is_marked_failed(
        self,
        batcher: MicroBatcher,
        model: GatedModel,
        tracing: Tracing,
        exporter: InMemorySpanExporter,
    ) -> None:
        """A model call that raised has status ERROR and names the error type."""
        model.gate.set()
        with pytest.raises(ModelInputError):
            await batcher.submit(-np.ones((1, 2)), span=request_span(tracing, "bad"))

        (call,) = named(exporter, "model call")
        assert not call.status.is_ok
        assert not call.status.is_unset
        assert "ValueError" == (call.attributes or {})["error.type"]


def test_caller_with_a_malformed_traceparent_gets_a_new_trace(tracing: Tracing) -> None:
    """A traceparent that is not W3C's format is ignored: the span starts a new trace."""
    span = tracing.start_request(
        "POST", "/predict", "/predict", {"traceparent": "00-zz-yy-01"}, "r"
    )
    span.end(200, None, None, None)

    context = span.span.get_span_context()
    assert context.is_valid
    assert span.traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
