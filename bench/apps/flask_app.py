"""Servers (b) and (c): the classic Flask + joblib tutorial service, as the tutorial writes it.

Run under gunicorn (``gunicorn bench.apps.flask_app:app``). The artifacts come from
``BENCH_MODEL_PATHS`` (``name=path,name=path``); the tutorial serves one model, so ``?model=``
only picks which of the bench's models answers, and the first one is the default.
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
from flask import Flask
from flask import Response
from flask import jsonify
from flask import request

from bench.catalog import MODEL_PATHS_ENV

__all__ = ["app"]


def _load_models(spec: str) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for item in spec.split(","):
        name, _, path = item.partition("=")
        models[name] = joblib.load(path)
    return models


models = _load_models(os.environ[MODEL_PATHS_ENV])
_default = next(iter(models))

app = Flask(__name__)


@app.route("/predict", methods=["POST"])
def predict() -> Response:
    """The tutorial's one route: ``{"prediction": model.predict(X).tolist()}``."""
    model = models[request.args.get("model", _default)]
    return jsonify({"prediction": model.predict(np.array(request.get_json()["features"])).tolist()})
