"""Prometheus metrics: every series of the README's Metrics section on a registry the app owns.

:class:`Metrics` holds the metric objects; :meth:`Metrics.observer` gives each batcher a
:class:`~service.batching.BatchObserver` with its labels bound, so the batcher itself never
imports prometheus_client. With several worker processes, prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``, set by the server before any worker starts) sums the workers' files
on every scrape; :func:`exposition` handles both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram
from prometheus_client import PlatformCollector
from prometheus_client import ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.multiprocess import mark_process_dead

from service.batching import BatchObserver
from service.batching import Outcome
from service.loading import LoadEvent
from service.loading import ServedVersion
from service.store import Manifest
from service.store import Output

__all__ = [
    "MULTIPROC_ENV",
    "Metrics",
    "exposition",
    "multiprocess_enabled",
    "row_buckets",
]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# From 0.25 ms (one small batch on a warm model) to 30 s (the default request deadline).
LATENCY_BUCKETS_S = (
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0, 30.0,
)  # fmt: skip


def row_buckets(max_batch_rows: int) -> tuple[float, ...]:
    """Powers of two up to (and including) the largest batch: 1, 2, 4, ..., max."""
    buckets: list[float] = []
    size = 1
    while size < max_batch_rows:
        buckets.append(size)
        size *= 2
    buckets.append(max_batch_rows)
    return tuple(buckets)


def multiprocess_enabled() -> bool:
    """True when this process writes its metrics to a shared multiprocess directory."""
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """The service's metric objects, registered on ``registry``.

    Args:
        registry: the app's own registry (tests build a fresh one per app).
        max_batch_rows: the top bucket of ``prediction_batch_rows``.
    """

    def __init__(self, registry: CollectorRegistry, *, max_batch_rows: int) -> None:
        self.registry = registry
        self.multiprocess = multiprocess_enabled()
        if not self.multiprocess:
            # In multiprocess mode these would describe only the scraping worker.
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.http_requests = Counter(
            "prediction_http_requests_total",
            "HTTP requests answered, by route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "prediction_http_request_duration_seconds",
            "Time from request received to response ready, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.requests = Counter(
            "prediction_requests_total",
            "Prediction requests by model version and outcome "
            "(ok, invalid, rejected, timeout, error).",
            ["model", "version", "outcome"],
            registry=registry,
        )
        self.batch_rows = Histogram(
            "prediction_batch_rows",
            "Rows per model call.",
            ["model"],
            buckets=row_buckets(max_batch_rows),
            registry=registry,
        )
        self.queue_wait = Histogram(
            "prediction_queue_wait_seconds",
            "Time a request's rows waited in the batch queue before their model call started.",
            ["model"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.model_seconds = Histogram(
            "prediction_model_seconds",
            "Duration of one model call (a whole batch).",
            ["model", "version", "output"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.queue_rows = Gauge(
            "prediction_queue_rows",
            "Rows waiting in batch queues.",
            ["model"],
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.model_info = Gauge(
            "prediction_model_info",
            "1 for each loaded model version; version_mismatch=true when loaded despite "
            "another scikit-learn version; engine: what answers its calls (trees or sklearn).",
            ["model", "version", "sha256", "framework_version", "version_mismatch", "engine"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.loop_tasks = Gauge(
            "prediction_event_loop_tasks",
            "Tasks alive in the worker's event loop (a leak shows as steady growth).",
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.model_loads = Counter(
            "prediction_model_loads_total",
            "Attempts to load a model version, by outcome: ok, checksum_mismatch, "
            "version_mismatch, untrusted (a type not trusted, or a pickle not allowed), error.",
            ["model", "outcome"],
            registry=registry,
        )

    def observer(self, manifest: Manifest, output: Output) -> BatchObserver:
        """The observer of the batcher serving ``output`` of ``manifest``'s version."""
        return _BatcherMetrics(self, manifest, output)

    def record_outcome(self, manifest: Manifest, outcome: Outcome) -> None:
        """Count a prediction request that ended before reaching a batcher (e.g. bad input)."""
        self.requests.labels(manifest.name, str(manifest.version), outcome).inc()

    # RegistryListener

    def load_attempted(self, event: LoadEvent) -> None:
        """Count a load attempt by its outcome."""
        self.model_loads.labels(event.name, event.outcome).inc()

    def version_served(self, served: ServedVersion) -> None:
        """Mark a version as loaded on ``prediction_model_info``."""
        self.model_info.labels(*self._info_labels(served)).set(1)

    def version_retired(self, served: ServedVersion) -> None:
        """Remove a version's ``prediction_model_info`` series."""
        with contextlib.suppress(KeyError):
            self.model_info.remove(*self._info_labels(served))

    def observe_http(self, method: str, route: str, status: int, duration_s: float) -> None:
        """Count one answered HTTP request; ``route`` must be a template, never a raw path."""
        key = (method, route, status)
        children = self._http_children.get(key)
        if children is None:
            # Resolving labels costs more than the update; the key space is the metric's own.
            children = self._http_children[key] = (
                self.http_requests.labels(method, route, str(status)),
                self.http_duration.labels(method, route),
            )
        children[0].inc()
        children[1].observe(duration_s)

    @staticmethod
    def _info_labels(served: ServedVersion) -> tuple[str, ...]:
        manifest = served.manifest
        return (
            manifest.name,
            str(manifest.version),
            manifest.sha256,
            manifest.framework_version,
            "true" if served.version_mismatch else "false",
            served.engine,
        )


class _BatcherMetrics:
    """A :class:`BatchObserver` with one batcher's labels bound once."""

    def __init__(self, metrics: Metrics, manifest: Manifest, output: Output) -> None:
        model = manifest.name
        version = str(manifest.version)
        self._queue_rows = metrics.queue_rows.labels(model)
        self._batch_rows = metrics.batch_rows.labels(model)
        self._queue_wait = metrics.queue_wait.labels(model)
        self._model_seconds = metrics.model_seconds.labels(model, version, output)
        self._outcomes = {
            outcome: metrics.requests.labels(model, version, outcome)
            for outcome in ("ok", "invalid", "rejected", "timeout", "error")
        }
        # Several batchers (versions, outputs) share the per-model gauge: report deltas.
        self._last_depth = 0

    def queue_depth(self, rows: int) -> None:
        self._queue_rows.inc(rows - self._last_depth)
        self._last_depth = rows

    def batch_started(self, rows: int, queue_wait_s: Sequence[float]) -> None:
        self._batch_rows.observe(rows)
        for wait_s in queue_wait_s:
            self._queue_wait.observe(wait_s)

    def batch_finished(self, rows: int, model_s: float, *, ok: bool) -> None:
        self._model_seconds.observe(model_s)

    def request_finished(self, outcome: Outcome) -> None:
        self._outcomes[outcome].inc()


def exposition(metrics: Metrics, accept: str | None) -> tuple[bytes, str]:
    """The scrape body and its content type (OpenMetrics when ``accept`` asks for it).

    In multiprocess mode every scrape reads all workers' files through a fresh registry, as
    prometheus_client's multiprocess documentation prescribes.
    """
    # Read on the loop at scrape time: the only moment anyone looks at it.
    metrics.loop_tasks.set(len(asyncio.all_tasks()))
    encoder, content_type = choose_encoder(accept or "")
    if metrics.multiprocess:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return encoder(registry), content_type
    return encoder(metrics.registry), content_type


def mark_worker_dead(pid: int) -> None:
    """Drop a finished worker's live gauges from the multiprocess directory."""
    if multiprocess_enabled():
        mark_process_dead(pid)  # type: ignore[no-untyped-call]
