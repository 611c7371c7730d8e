"""V1 routes in the TF-Serving / KServe V1 style: predict and model status.

:func:`predict_answer` is the predict route; the ASGI prediction path calls it directly, and the
Quart view calls it for the requests that path leaves to Quart.
"""

from __future__ import annotations

from typing import Any

from numpy.typing import NDArray
from quart import Blueprint
from quart import Response

from service.errors import InvalidInputError
from service.http.encoding import read_body
from service.http.exchange import Exchange
from service.http.exchange import current_exchange
from service.http.predicting import model_headers
from service.http.predicting import model_ready_answer
from service.http.predicting import request_timeout_s
from service.http.predicting import resolve_and_parse
from service.http.responses import Answer
from service.http.responses import decode_json
from service.http.responses import json_answer
from service.http.responses import to_response
from service.http.state import AppState
from service.http.state import get_state
from service.store import Manifest
from service.tables import model_input

__all__ = ["blueprint", "predict_answer"]

blueprint = Blueprint("v1", __name__)


# Werkzeug compiles the rule to a regex, so the name part backtracks to stop before ":predict"
# (model names cannot hold a colon: service.store.NAME_PATTERN).
@blueprint.post("/v1/models/<name>:predict")
async def predict(name: str) -> Response:
    """``{"instances": [row, ...]}`` to ``{"predictions": [...]}``, one entry per row, in order."""
    return to_response(await predict_answer(get_state(), current_exchange(), name))


async def predict_answer(state: AppState, exchange: Exchange, name: str) -> Answer:
    """Answer ``POST /v1/models/<name>:predict``."""
    timeout_s = request_timeout_s(state.settings, exchange)
    body = decode_json(await read_body(exchange, state.settings.max_body_bytes))

    def parse(manifest: Manifest) -> NDArray[Any]:
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list):
            raise InvalidInputError(
                'The body must be an object with "instances": an array of rows, each an array '
                "of values or an object keyed by feature name."
            )
        return model_input(instances, manifest, max_rows=state.settings.max_request_rows)

    served, matrix = resolve_and_parse(state, exchange, name, None, parse)
    exchange.rows = len(matrix)
    result = await served.infer("predict", matrix, timeout_s=timeout_s, span=exchange.span)
    return json_answer({"predictions": result.tolist()}, headers=model_headers(served))


@blueprint.get("/v1/models/<name>")
async def model_status(name: str) -> Response:
    """``{"name": ..., "ready": true}`` for a served model; 404 unknown, 503 while draining."""
    return to_response(model_ready_answer(get_state(), name, None))
