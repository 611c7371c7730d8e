"""V1 routes in the TF-Serving / KServe V1 style: predict and model status."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from quart import Blueprint
from quart import Response
from quart import g
from quart import request

from service.errors import InvalidInputError
from service.http.predicting import model_headers
from service.http.predicting import model_ready_response
from service.http.predicting import request_timeout_s
from service.http.predicting import resolve_and_parse
from service.http.responses import json_response
from service.http.responses import read_json
from service.http.state import get_state
from service.inputs import matrix_from_rows
from service.store import Manifest

__all__ = ["blueprint"]

blueprint = Blueprint("v1", __name__)


# Werkzeug compiles the rule to a regex, so the name part backtracks to stop before ":predict"
# (model names cannot hold a colon: service.store.NAME_PATTERN).
@blueprint.post("/v1/models/<name>:predict")
async def predict(name: str) -> Response:
    """``{"instances": [row, ...]}`` to ``{"predictions": [...]}``, one entry per row, in order."""
    state = get_state()
    timeout_s = request_timeout_s(state.settings)
    body = await read_json(request, content_type_required=False)

    def parse(manifest: Manifest) -> NDArray[np.float64]:
        instances = body.get("instances") if isinstance(body, dict) else None
        if not isinstance(instances, list):
            raise InvalidInputError(
                'The body must be an object with "instances": an array of rows, each an array '
                "of numbers or an object keyed by feature name."
            )
        return matrix_from_rows(
            instances,
            n_features=manifest.n_features,
            feature_names=manifest.feature_names,
            max_rows=state.settings.max_request_rows,
        )

    served, matrix = resolve_and_parse(state, name, None, parse)
    g.rows = len(matrix)
    result = await served.infer("predict", matrix, timeout_s=timeout_s)
    return json_response({"predictions": result.tolist()}, headers=model_headers(served))


@blueprint.get("/v1/models/<name>")
async def model_status(name: str) -> Response:
    """``{"name": ..., "ready": true}`` for a served model; 404 unknown, 503 while draining."""
    return model_ready_response(get_state(), name, None)
