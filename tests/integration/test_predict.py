"""The Flask-compatible routes through the app: answers, headers and model selection."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_iris

from service.store import ModelStore
from tests.types import Client

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.9, 3.1, 5.4, 2.1]


async def test_predict_one_row(client: Client) -> None:
    """The README's curl example answers {"prediction": [0]}."""
    response = await client.post("/predict", json={"features": [SETOSA]})

    assert 200 == response.status_code
    assert {"prediction": [0]} == await response.get_json()


async def test_predict_matches_model_on_whole_dataset(client: Client, store_root: Path) -> None:
    """Every iris row is answered exactly as model.predict answers it, in order."""
    X, _ = load_iris(return_X_y=True)
    model = ModelStore(store_root).load("iris", 1).model

    response = await client.post("/predict", json={"instances": X.tolist()})

    assert model.predict(X).tolist() == (await response.get_json())["prediction"]


async def test_predict_proba_names_classes(client: Client) -> None:
    """predict_proba answers probabilities per row and the model's classes."""
    response = await client.post("/predict_proba", json={"features": [SETOSA, VIRGINICA]})
    body = await response.get_json()

    assert 200 == response.status_code
    assert [0, 1, 2] == body["classes"]
    assert 2 == len(body["probabilities"])
    np.testing.assert_allclose([1.0, 1.0], np.sum(body["probabilities"], axis=1))


async def test_model_headers(client: Client) -> None:
    """Prediction responses name the model and version that answered."""
    response = await client.post("/predict", json={"features": SETOSA})

    assert ("iris", "1") == (
        response.headers["X-Model-Name"],
        response.headers["X-Model-Version"],
    )


def is_fresh_request_id(value: str) -> bool:
    """True for an id the server generated: a random (version 4) UUID as 32 hex digits."""
    return re.fullmatch(r"[0-9a-f]{32}", value) is not None and uuid.UUID(hex=value).version == 4


async def test_request_id_generated(client: Client) -> None:
    """Without a client id, each response carries a new random UUID as its X-Request-ID."""
    first = (await client.get("/healthz")).headers["X-Request-ID"]
    second = (await client.get("/healthz")).headers["X-Request-ID"]

    assert (True, True, True) == (
        is_fresh_request_id(first),
        is_fresh_request_id(second),
        first != second,
    )


async def test_request_id_echoed(client: Client) -> None:
    """A client's X-Request-ID is echoed back, on errors too."""
    response = await client.post(
        "/predict",
        data="{",
        headers={"X-Request-ID": "abc-123", "Content-Type": "application/json"},
    )

    assert (400, "abc-123") == (response.status_code, response.headers["X-Request-ID"])


@pytest.mark.parametrize("sent", ["a b\tc", "id;drop", "x" * 129])
async def test_unsafe_request_id_replaced(client: Client, sent: str) -> None:
    """An X-Request-ID with characters unsafe for logs, or over 128 long, gets a fresh id."""
    response = await client.get("/healthz", headers={"X-Request-ID": sent})

    assert is_fresh_request_id(response.headers["X-Request-ID"])


async def test_longest_safe_request_id_echoed(client: Client) -> None:
    """A 128-character id of letters, digits and ``._:-`` is echoed unchanged."""
    sent = ("Ab9._:-" * 19)[:128]

    response = await client.get("/healthz", headers={"X-Request-ID": sent})

    assert sent == response.headers["X-Request-ID"]


async def test_named_model_and_version(client: Client) -> None:
    """The model and version query parameters pick the model that answers."""
    response = await client.post(
        "/predict?model=diabetes&version=1", json={"features": [[0.0] * 10]}
    )

    assert 200 == response.status_code
    assert ("diabetes", "1") == (
        response.headers["X-Model-Name"],
        response.headers["X-Model-Version"],
    )
    assert isinstance((await response.get_json())["prediction"][0], float)


async def test_rows_as_objects(client: Client) -> None:
    """Rows keyed by the manifest's feature names are accepted in any key order."""
    row = {"petal_width": 0.2, "sepal_length": 5.1, "petal_length": 1.4, "sepal_width": 3.5}

    response = await client.post("/predict", json={"instances": [row]})

    assert {"prediction": [0]} == await response.get_json()


async def test_healthz(client: Client) -> None:
    """/healthz answers 200 while the process serves."""
    response = await client.get("/healthz")

    assert (200, {"status": "alive"}) == (response.status_code, await response.get_json())


async def test_readyz_lists_models(client: Client) -> None:
    """/readyz answers 200 once models are loaded, naming them and their versions."""
    response = await client.get("/readyz")

    assert 200 == response.status_code
    assert {"diabetes": [1], "iris": [1], "loans": [1]} == (await response.get_json())["models"]


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/x+json"])
async def test_json_content_type_variants(client: Client, content_type: str) -> None:
    """JSON media types with parameters or a +json suffix are read as JSON and answered."""
    response = await client.post(
        "/predict",
        data='{"features": [5.1, 3.5, 1.4, 0.2]}',
        headers={"Content-Type": content_type},
    )

    assert (200, {"prediction": [0]}) == (response.status_code, await response.get_json())
