"""Parity with the tutorial Flask service: same requests, same statuses, same JSON bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask import jsonify
from flask import request

from service.store import ModelStore
from tests.types import Client

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [6.9, 3.1, 5.4, 2.1]]
IRIS_NAMES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
DIABETES_ROWS = [[0.03, 0.05, 0.06, 0.02, -0.04, -0.03, -0.04, -0.0, 0.02, -0.02], [0.0] * 10]


def tutorial_app(model: Any, feature_names: tuple[str, ...] | None) -> Flask:
    """The classic Flask + joblib service, written the way the tutorial writes it."""
    app = Flask(__name__)

    @app.route("/predict", methods=["POST"])
    def predict() -> Any:
        data = request.get_json()
        if isinstance(data, dict):
            features = data["features"] if "features" in data else data["instances"]
        else:
            features = data
        if isinstance(features[0], dict):
            features = [[row[name] for name in feature_names or ()] for row in features]
        X = np.array(features)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        return jsonify({"prediction": model.predict(X).tolist()})

    return app


def body_forms(rows: list[list[float]], names: tuple[str, ...] | None) -> list[object]:
    forms: list[object] = [
        {"features": rows},
        {"features": rows[0]},
        {"instances": rows},
        {"instances": rows[0]},
        rows,
    ]
    if names is not None:
        forms.append({"instances": [dict(zip(names, row, strict=True)) for row in rows]})
        forms.append(
            {"features": [dict(zip(reversed(names), row[::-1], strict=True)) for row in rows]}
        )
    return forms


@pytest.mark.parametrize(
    ("model_name", "rows", "names"),
    [("iris", IRIS_ROWS, IRIS_NAMES), ("diabetes", DIABETES_ROWS, None)],
)
async def test_every_valid_body_form_matches_flask(
    client: Client,
    store_root: Path,
    model_name: str,
    rows: list[list[float]],
    names: tuple[str, ...] | None,
) -> None:
    """For each accepted body form, the status and JSON body equal the tutorial service's."""
    model = ModelStore(store_root).load(model_name, 1).model
    flask_client = tutorial_app(model, names).test_client()

    for body in body_forms(rows, names):
        expected = flask_client.post("/predict", json=body)
        actual = await client.post(f"/predict?model={model_name}", json=body)

        assert (expected.status_code, expected.get_json()) == (
            actual.status_code,
            await actual.get_json(),
        ), body
