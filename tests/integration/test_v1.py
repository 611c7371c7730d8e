"""V1 (TF-Serving / KServe V1 style) routes through the app."""

from __future__ import annotations

from pathlib import Path

import pytest
from quart import Quart
from sklearn.datasets import load_iris

from service.demo import IRIS_FEATURES
from service.http.state import get_state
from service.store import ModelStore
from tests.types import Client

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.9, 3.1, 5.4, 2.1]


def test_colon_rule_routes_to_predict(app: Quart) -> None:
    """Werkzeug splits /v1/models/<name>:predict at the colon, so the name is the model's."""
    adapter = app.url_map.bind("localhost")

    assert ("v1.predict", {"name": "iris"}) == adapter.match(
        "/v1/models/iris:predict", method="POST"
    )


async def test_predict_matches_model(client: Client, store_root: Path) -> None:
    """Instances as rows are answered as model.predict answers them, in order."""
    X, _ = load_iris(return_X_y=True)
    model = ModelStore(store_root).load("iris", 1).model

    response = await client.post("/v1/models/iris:predict", json={"instances": X.tolist()})

    assert {"predictions": model.predict(X).tolist()} == await response.get_json()


async def test_predict_named_model(client: Client) -> None:
    """The model in the path answers, not the default model, and the headers name it."""
    response = await client.post("/v1/models/diabetes:predict", json={"instances": [[0.0] * 10]})

    assert (200, "diabetes", "1") == (
        response.status_code,
        response.headers["X-Model-Name"],
        response.headers["X-Model-Version"],
    )


async def test_instances_as_objects(client: Client) -> None:
    """Instances keyed by feature name are read in the manifest's feature order."""
    instances = [dict(zip(IRIS_FEATURES, row, strict=True)) for row in (SETOSA, VIRGINICA)]

    response = await client.post("/v1/models/iris:predict", json={"instances": instances})

    assert {"predictions": [0, 2]} == await response.get_json()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "text/plain"},
        {"Content-Type": "application/json"},
    ],
)
async def test_body_read_as_json_whatever_its_content_type(
    client: Client, headers: dict[str, str]
) -> None:
    """A JSON body is read as JSON whatever its Content-Type says (`curl -d` sends a form type)."""
    response = await client.post(
        "/v1/models/iris:predict", data=b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}', headers=headers
    )

    assert (200, {"predictions": [0]}) == (response.status_code, await response.get_json())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"features": [SETOSA]}, 'The body must be an object with "instances"'),
        ({"instances": SETOSA}, "Row 0 must be an array of 4 numbers."),
        ({"instances": []}, "The request has no rows."),
        ({"instances": [[5.1, 3.5, 1.4]]}, "Row 0 has 3 features; the model expects 4."),
        ({"instances": [{"sepal_length": 5.1}]}, "Row 0 is missing feature 'sepal_width'."),
        ([SETOSA], 'The body must be an object with "instances"'),
    ],
)
async def test_invalid_instances(client: Client, body: object, message: str) -> None:
    """Bodies that are not {"instances": rows} of the model's features are 400, saying why."""
    response = await client.post("/v1/models/iris:predict", json=body)
    error = (await response.get_json())["error"]

    assert (400, True) == (response.status_code, error.startswith(message)), error


async def test_predict_unknown_model(client: Client) -> None:
    """Predicting with a model that is not served is 404."""
    response = await client.post("/v1/models/nope:predict", json={"instances": [SETOSA]})

    assert (404, {"error": "Model 'nope' is not loaded."}) == (
        response.status_code,
        await response.get_json(),
    )


async def test_text_body_that_is_not_json_is_400(client: Client) -> None:
    """A text/plain body that is not JSON is 400, not 415."""
    response = await client.post(
        "/v1/models/iris:predict", data="x", headers={"Content-Type": "text/plain"}
    )

    assert 400 == response.status_code
    assert (await response.get_json())["error"].startswith("The body is not valid JSON")


async def test_model_status(client: Client) -> None:
    """GET /v1/models/{name} says the model is ready."""
    response = await client.get("/v1/models/iris")

    assert (200, {"name": "iris", "ready": True}) == (
        response.status_code,
        await response.get_json(),
    )


async def test_model_status_unknown(client: Client) -> None:
    """GET /v1/models/{name} of a model that is not served is 404."""
    response = await client.get("/v1/models/nope")

    assert (404, {"error": "Model 'nope' is not loaded."}) == (
        response.status_code,
        await response.get_json(),
    )


async def test_model_status_while_draining(app: Quart, client: Client) -> None:
    """A draining server reports its models as unavailable: 503 with Retry-After."""
    get_state(app).draining = True

    response = await client.get("/v1/models/iris")

    assert (503, "1", {"error": "The server is draining."}) == (
        response.status_code,
        response.headers["Retry-After"],
        await response.get_json(),
    )


async def test_get_on_predict_is_not_predict(client: Client) -> None:
    """GET on the :predict path does not predict: the name with the colon is no model."""
    response = await client.get("/v1/models/iris:predict")

    assert (404, {"error": "Model 'iris:predict' is not loaded."}) == (
        response.status_code,
        await response.get_json(),
    )


async def test_root_is_v1_liveness(client: Client) -> None:
    """GET / answers {"status": "alive"}, the V1 liveness check of KServe's SDK."""
    response = await client.get("/")

    assert (200, {"status": "alive"}) == (response.status_code, await response.get_json())
