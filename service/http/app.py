"""The app factory: builds a Quart app from settings and wires the HTTP layer to the core."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncGenerator

from prometheus_client import CollectorRegistry
from quart import Quart
from quart import Response
from quart import g
from quart import request

from service.http import flask_routes
from service.http import openapi
from service.http import ops
from service.http import repository
from service.http import v1
from service.http import v2
from service.http.errors import register_error_handlers
from service.http.state import AppState
from service.http.state import get_state
from service.metrics import Metrics
from service.metrics import mark_worker_dead
from service.models import ModelRegistry
from service.settings import Settings
from service.store import ModelStore

__all__ = ["create_app"]

access_log = logging.getLogger("service.access")

REQUEST_ID_HEADER = "X-Request-ID"
# Echo only ids that are safe in logs and headers; anything else gets a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# The route label of requests no route matched: a constant, so paths never become labels.
UNMATCHED_ROUTE = "<unmatched>"


def create_app(
    settings: Settings | None = None,
    *,
    store: ModelStore | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> Quart:
    """Build the app; models load and batchers start when it starts serving.

    Args:
        settings: defaults to ``Settings.from_env(os.environ)``, the one place the
            environment is read.
        store: defaults to the store at ``settings.model_store``.
        metrics_registry: where the app's metrics live; defaults to a fresh registry, so
            every app (and every test) counts on its own.
    """
    if settings is None:
        settings = Settings.from_env(os.environ)
    if store is None:
        store = ModelStore(
            settings.model_store,
            trusted_types=settings.trusted_types,
            allow_pickle=settings.allow_pickle,
        )
    metrics = Metrics(
        metrics_registry or CollectorRegistry(), max_batch_rows=settings.max_batch_rows
    )

    # No static folder: no route of this app serves files from disk.
    app = Quart(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    registry = ModelRegistry(store, settings, observer_factory=metrics.observer, listener=metrics)
    AppState(settings=settings, registry=registry, metrics=metrics).attach(app)

    register_error_handlers(app)
    app.register_blueprint(ops.blueprint)
    app.register_blueprint(flask_routes.blueprint)
    app.register_blueprint(repository.blueprint)
    app.register_blueprint(v2.blueprint)
    app.register_blueprint(v1.blueprint)
    app.register_blueprint(openapi.blueprint)
    app.before_request(_start_request)
    app.after_request(_finish_request)

    @app.while_serving
    async def _lifespan() -> AsyncGenerator[None, None]:
        state = get_state(app)
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
        mark_worker_dead(os.getpid())

    return app


async def _start_request() -> None:
    g.started = time.perf_counter()
    sent = request.headers.get(REQUEST_ID_HEADER)
    g.request_id = sent if sent and _REQUEST_ID.fullmatch(sent) else uuid.uuid4().hex


async def _finish_request(response: Response) -> Response:
    # g may lack these when a request failed before before_request hooks ran.
    request_id = g.get("request_id") or uuid.uuid4().hex
    response.headers[REQUEST_ID_HEADER] = request_id
    duration_s = time.perf_counter() - g.get("started", time.perf_counter())
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    state = get_state()
    state.metrics.observe_http(request.method, route, response.status_code, duration_s)
    if state.settings.access_log:
        access_log.info(
            "%s %s %d",
            request.method,
            route,
            response.status_code,
            extra={
                "request_id": request_id,
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(duration_s * 1000, 3),
                "model": g.get("model"),
                "version": g.get("model_version"),
                "rows": g.get("rows"),
            },
        )
    return response
