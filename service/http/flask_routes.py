"""The Flask tutorial service's routes, kept byte-for-byte compatible: ``/predict`` and
``/predict_proba``."""

from __future__ import annotations

from quart import Blueprint
from quart import Response
from quart import g
from quart import request

from service.http.predicting import model_headers
from service.http.predicting import parse_version
from service.http.predicting import request_timeout_s
from service.http.predicting import resolve_and_parse
from service.http.responses import json_response
from service.http.responses import read_json
from service.http.state import get_state
from service.inputs import matrix_from_rows
from service.inputs import rows_from_body
from service.store import Output

__all__ = ["blueprint"]

blueprint = Blueprint("flask_compatible", __name__)


@blueprint.post("/predict")
async def predict() -> Response:
    """``{"prediction": model.predict(X).tolist()}``, one entry per row, in order."""
    return await _serve("predict")


@blueprint.post("/predict_proba")
async def predict_proba() -> Response:
    """``{"probabilities": [[...], ...], "classes": [...]}``, one row per input row."""
    return await _serve("predict_proba")


async def _serve(output: Output) -> Response:
    state = get_state()
    version = parse_version(request.args.get("version"))
    timeout_s = request_timeout_s(state.settings)
    body = await read_json(request)
    served, matrix = resolve_and_parse(
        state,
        request.args.get("model") or None,
        version,
        lambda manifest: matrix_from_rows(
            rows_from_body(body),
            n_features=manifest.n_features,
            feature_names=manifest.feature_names,
            max_rows=state.settings.max_request_rows,
        ),
    )
    manifest = served.manifest
    g.rows = len(matrix)
    result = await served.infer(output, matrix, timeout_s=timeout_s)
    if output == "predict":
        payload: dict[str, object] = {"prediction": result.tolist()}
    else:
        payload = {"probabilities": result.tolist(), "classes": list(manifest.classes or ())}
    return json_response(payload, headers=model_headers(served))
