"""The app factory: builds a Quart app from settings and wires the HTTP layer to the core."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from quart import Quart
from quart import Response
from quart import g
from quart import request
from quart.wrappers.response import DataBody

from service.http import flask_routes
from service.http import openapi
from service.http import ops
from service.http import repository
from service.http import v1
from service.http import v2
from service.http.encoding import compress
from service.http.encoding import response_coding
from service.http.errors import register_error_handlers
from service.http.exchange import REQUEST_ID_HEADER
from service.http.exchange import TRACEPARENT_HEADER
from service.http.exchange import UNMATCHED_ROUTE
from service.http.exchange import Exchange
from service.http.exchange import finish
from service.http.exchange import request_id_from
from service.http.fastpath import PredictionPath
from service.http.state import AppState
from service.http.state import get_state
from service.metrics import Metrics
from service.metrics import mark_worker_dead
from service.models import ModelRegistry
from service.settings import Settings
from service.store import ModelStore

if TYPE_CHECKING:  # only a process that traces imports OpenTelemetry (service.tracing)
    from service.tracing import Tracing

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    store: ModelStore | None = None,
    metrics_registry: CollectorRegistry | None = None,
    tracing: Tracing | None = None,
) -> Quart:
    """Build the app; models load and batchers start when it starts serving.

    Args:
        settings: defaults to ``Settings.from_env(os.environ)``, the one place the
            environment is read.
        store: defaults to the store at ``settings.model_store``.
        metrics_registry: where the app's metrics live; defaults to a fresh registry, so
            every app (and every test) counts on its own.
        tracing: the process's tracer; defaults to one exporting over OTLP/HTTP when
            ``settings.tracing`` is on (it is shut down, flushing its spans, when the app
            stops serving), else none.
    """
    if settings is None:
        settings = Settings.from_env(os.environ)
    if store is None:
        store = ModelStore(
            settings.model_store,
            trusted_types=settings.trusted_types,
            allow_pickle=settings.allow_pickle,
        )
    if tracing is None and settings.tracing:
        # Imported only when on: the SDK and its exporter cost ~130 ms and ~12 MB to import.
        from service.tracing import start_tracing

        tracing = start_tracing()
    metrics = Metrics(
        metrics_registry or CollectorRegistry(), max_batch_rows=settings.max_batch_rows
    )

    # No static folder: no route of this app serves files from disk.
    app = Quart(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    registry = ModelRegistry(
        store, settings, observer_factory=metrics.observer, listener=metrics, tracing=tracing
    )
    state = AppState(settings=settings, registry=registry, metrics=metrics, tracing=tracing)
    state.attach(app)

    register_error_handlers(app)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(flask_routes.blueprint)
    app.register_blueprint(repository.blueprint)
    app.register_blueprint(v2.blueprint)
    app.register_blueprint(v1.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    if tracing is not None:
        app.teardown_request(_abandon_span)
    # Flask's middleware idiom: the prediction routes' POSTs are served before Quart's dispatch.
    app.asgi_app = PredictionPath(app.asgi_app, state, body_timeout_s=app.config["BODY_TIMEOUT"])  # type: ignore[method-assign]

    @app.while_serving
    async def _lifespan() -> AsyncGenerator[None, None]:
        await state.registry.start()
        poller = None
        if settings.reload_interval_s > 0:
            poller = asyncio.create_task(state.registry.poll(settings.reload_interval_s))
        yield
        state.draining = True
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await state.registry.aclose(settings.graceful_timeout_s)
        if tracing is not None:
            # Exports what is buffered (the drained requests' spans too); blocks up to the
            # exporter's time-out, so off the loop.
            await asyncio.to_thread(tracing.shutdown)
        mark_worker_dead(os.getpid())

    return app


async def _start_request() -> None:
    g.exchange = _exchange_of_current_request(get_state())


async def _finish_request(response: Response) -> Response:
    state = get_state()
    # g lacks the exchange when a request failed before the before_request hooks ran.
    exchange: Exchange = g.get("exchange") or _exchange_of_current_request(state)
    response.headers[REQUEST_ID_HEADER] = exchange.request_id
    if exchange.span is not None:
        response.headers[TRACEPARENT_HEADER] = exchange.span.traceparent
    if state.settings.gzip_min_bytes:
        _compress_response(response, exchange, state.settings.gzip_min_bytes)
    finish(state, exchange, response.status_code)
    return response


# The API's own media types; Swagger UI's static files (the only large bodies) are cached by
# browsers instead of being compressed on the event loop on every request.
_COMPRESSIBLE = frozenset(
    {"application/json", "application/octet-stream", "text/plain", "application/openmetrics-text"}
)


def _compress_response(response: Response, exchange: Exchange, min_bytes: int) -> None:
    """Compress an in-memory API response as the ASGI prediction path does."""
    if response.mimetype not in _COMPRESSIBLE or "Content-Encoding" in response.headers:
        return
    response.vary.add("Accept-Encoding")
    body = response.response
    if not isinstance(body, DataBody) or len(body.data) < min_bytes:
        return
    coding = response_coding(exchange.headers.get("accept-encoding"))
    if coding is not None:
        response.set_data(compress(body.data, coding))
        response.headers["Content-Encoding"] = coding


async def _abandon_span(_: BaseException | None) -> None:
    # A request cancelled because its client hung up skips after_request: its span still ends.
    exchange: Exchange | None = g.get("exchange")
    if exchange is not None and exchange.span is not None:
        exchange.span.abandon()


def _exchange_of_current_request(state: AppState) -> Exchange:
    """The current request's exchange; with tracing on, its server span started."""
    rule = request.url_rule
    exchange = Exchange(
        method=request.method,
        route=rule.rule if rule is not None else UNMATCHED_ROUTE,
        request_id=request_id_from(request.headers.get(REQUEST_ID_HEADER)),
        started_s=time.perf_counter(),
        headers=request.headers,
        query=request.args,
        read_body=functools.partial(request.get_data, cache=False),
    )
    if state.tracing is not None:
        exchange.span = state.tracing.start_request(
            exchange.method, exchange.route, request.path, request.headers, exchange.request_id
        )
    return exchange
