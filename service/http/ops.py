"""Operations routes: liveness (also at ``/``, as KServe's V1 clients ask), readiness and the
Prometheus scrape."""

from __future__ import annotations

from quart import Blueprint
from quart import Response
from quart import request

from service.http.responses import json_response
from service.http.state import get_state
from service.metrics import exposition

__all__ = ["blueprint"]

blueprint = Blueprint("ops", __name__)


@blueprint.get("/")
@blueprint.get("/healthz")
async def healthz() -> Response:
    """200 while the process serves HTTP at all; ``GET /`` is the V1 protocol's liveness."""
    return json_response({"status": "alive"})


@blueprint.get("/readyz")
async def readyz() -> Response:
    """200 when every model is loaded and warmed and the server is not draining, else 503."""
    state = get_state()
    state.require_ready()
    models = {
        name: [v.version for v in versions] for name, versions in state.registry.models().items()
    }
    return json_response({"status": "ready", "models": models})


@blueprint.get("/metrics")
async def metrics() -> Response:
    """Every metric in the Prometheus text format, or OpenMetrics when the scraper asks."""
    body, content_type = exposition(get_state().metrics, request.headers.get("Accept"))
    return Response(body, status=200, content_type=content_type)
