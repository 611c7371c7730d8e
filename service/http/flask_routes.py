"""The Flask tutorial service's routes, kept byte-for-byte compatible: ``/predict`` and
``/predict_proba``.

:func:`answer` is the route; the ASGI prediction path calls it directly, and the Quart views
below call it for the requests that path leaves to Quart.
"""

from __future__ import annotations

from quart import Blueprint
from quart import Response

from service.http.encoding import read_body
from service.http.exchange import Exchange
from service.http.exchange import current_exchange
from service.http.predicting import model_headers
from service.http.predicting import parse_version
from service.http.predicting import request_timeout_s
from service.http.predicting import resolve_and_parse
from service.http.responses import Answer
from service.http.responses import decode_json
from service.http.responses import json_answer
from service.http.responses import require_json
from service.http.responses import to_response
from service.http.state import AppState
from service.http.state import get_state
from service.inputs import rows_from_body
from service.store import Output
from service.tables import model_input

__all__ = ["answer", "blueprint"]

blueprint = Blueprint("flask_compatible", __name__)


@blueprint.post("/predict")
async def predict() -> Response:
    """``{"prediction": model.predict(X).tolist()}``, one entry per row, in order."""
    return to_response(await answer(get_state(), current_exchange(), "predict"))


@blueprint.post("/predict_proba")
async def predict_proba() -> Response:
    """``{"probabilities": [[...], ...], "classes": [...]}``, one row per input row."""
    return to_response(await answer(get_state(), current_exchange(), "predict_proba"))


async def answer(state: AppState, exchange: Exchange, output: Output) -> Answer:
    """Answer ``POST /predict`` (``output="predict"``) or ``POST /predict_proba``."""
    version = parse_version(exchange.query.get("version"))
    timeout_s = request_timeout_s(state.settings, exchange)
    require_json(exchange.headers.get("content-type"))
    body = decode_json(await read_body(exchange, state.settings.max_body_bytes))
    served, matrix = resolve_and_parse(
        state,
        exchange,
        exchange.query.get("model") or None,
        version,
        lambda manifest: model_input(
            rows_from_body(body), manifest, max_rows=state.settings.max_request_rows
        ),
    )
    exchange.rows = len(matrix)
    result = await served.infer(output, matrix, timeout_s=timeout_s, span=exchange.span)
    if output == "predict":
        payload: dict[str, object] = {"prediction": result.tolist()}
    else:
        payload = {"probabilities": result.tolist(), "classes": list(served.manifest.classes or ())}
    return json_answer(payload, headers=model_headers(served))
