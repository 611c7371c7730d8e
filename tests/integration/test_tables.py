"""A table model (fitted on a DataFrame) through every protocol: answers equal the model's own
on ``pd.DataFrame(rows)``, alone or batched, and bad values are 400s naming the row and field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client import CollectorRegistry
from quart import Quart

from service.http import create_app
from service.settings import Settings
from service.store import ModelStore
from service.store.features import FeatureSchema
from tests.integration.conftest import serve_through
from tests.loans import ROWS
from tests.types import Client

CONCURRENT = 24


@pytest.fixture(name="model", scope="module")
def _model(demo_store_template: Path) -> Any:
    """The loans demo model, as the server loads it."""
    return ModelStore(demo_store_template).load("loans", 1).model


@pytest.fixture(name="schema", scope="module")
def _schema(demo_store_template: Path) -> FeatureSchema:
    features = ModelStore(demo_store_template).load("loans", 1).manifest.features
    assert features is not None
    return features


@pytest.fixture(name="registry")
def _registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(name="tables_app")
async def _tables_app(
    store_root: Path, registry: CollectorRegistry, layer: str
) -> AsyncIterator[Quart]:
    # A generous wait with a batch the size of a burst: a burst fills one batch.
    settings = Settings(
        model_store=store_root,
        default_model="loans",
        max_batch_rows=CONCURRENT,
        max_wait_ms=2000,
        reload_interval_s=0,
    )
    app = serve_through(create_app(settings, metrics_registry=registry), layer)
    async with app.test_app():
        yield app


@pytest.fixture(name="client")
def _client(tables_app: Quart) -> Client:
    return tables_app.test_client()


def as_arrays(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [list(row.values()) for row in rows]


@pytest.mark.parametrize(
    "body",
    [
        {"features": ROWS},
        {"instances": ROWS},
        ROWS,
        {"features": as_arrays(ROWS)},
        as_arrays(ROWS),
    ],
    ids=["features", "instances", "bare", "features-arrays", "bare-arrays"],
)
async def test_predict_matches_pandas(client: Client, model: Any, body: Any) -> None:
    """/predict answers model.predict(pd.DataFrame(rows)) for every body form."""
    response = await client.post("/predict", json=body)

    assert response.status_code == 200
    assert (await response.get_json())["prediction"] == model.predict(pd.DataFrame(ROWS)).tolist()


async def test_predict_one_flat_row(client: Client, model: Any) -> None:
    """A flat array of values is one row, as for numeric models."""
    response = await client.post("/predict", json={"features": as_arrays(ROWS)[0]})

    assert (await response.get_json())["prediction"] == model.predict(
        pd.DataFrame(ROWS[:1])
    ).tolist()


async def test_predict_proba_matches_pandas(client: Client, model: Any) -> None:
    """/predict_proba answers model.predict_proba(pd.DataFrame(rows)) and the classes."""
    response = await client.post("/predict_proba", json={"instances": ROWS})

    assert await response.get_json() == {
        "probabilities": model.predict_proba(pd.DataFrame(ROWS)).tolist(),
        "classes": ["approved", "declined"],
    }


async def test_v1_predict_matches_pandas(client: Client, model: Any) -> None:
    """V1 :predict takes instances as objects or arrays."""
    expected = model.predict(pd.DataFrame(ROWS)).tolist()

    objects = await client.post("/v1/models/loans:predict", json={"instances": ROWS})
    arrays = await client.post("/v1/models/loans:predict", json={"instances": as_arrays(ROWS)})

    assert (await objects.get_json())["predictions"] == expected
    assert (await arrays.get_json())["predictions"] == expected


async def test_absent_nullable_fields_are_missing(client: Client, model: Any) -> None:
    """An object row may leave out nullable features; the model imputes them.

    Alone in pd.DataFrame, that row's all-missing string column would be of object dtype,
    which the imputer refuses; the server keeps the column's dtype, so the row answers as it
    does among others.
    """
    row = {k: v for k, v in ROWS[1].items() if v is not None}

    response = await client.post("/predict_proba", json=[row])

    assert (await response.get_json())["probabilities"] == [
        pytest.approx(model.predict_proba(pd.DataFrame(ROWS))[1].tolist(), rel=1e-12)
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**ROWS[0], "age": "41"}, "Row 0, feature 'age': '41' is not an integer."),
        ({**ROWS[0], "owns_home": 1}, "Row 0, feature 'owns_home': 1 is not true or false."),
        ({**ROWS[0], "purpose": ["car"]}, "Row 0, feature 'purpose': an array is not a string."),
        (
            {**ROWS[0], "loan_amount": None},
            "Row 0, feature 'loan_amount': null is not allowed (the feature is not nullable).",
        ),
        ({**ROWS[0], "colour": "red"}, "Row 0 has unknown feature 'colour'."),
    ],
)
async def test_bad_values_are_400(client: Client, row: dict[str, Any], message: str) -> None:
    """A value that does not fit its feature is a 400 naming the row and the feature."""
    response = await client.post("/predict", json=[row])

    assert (response.status_code, await response.get_json()) == (400, {"error": message})


async def test_huge_unknown_string_is_400(client: Client) -> None:
    """A megabyte-long category the encoder does not know is a 400, with a short message."""
    response = await client.post("/predict", json=[{**ROWS[0], "purpose": "x" * 1_000_000}])

    body = await response.get_json()
    assert response.status_code == 400
    assert len(body["error"]) < 1000


async def test_row_answers_alone_as_batched(client: Client) -> None:
    """Each row gets the same probabilities alone as among others, up to the last bits (BLAS
    sums a matrix product differently for different numbers of rows)."""
    together = await client.post("/predict_proba", json=ROWS)
    alone = [await client.post("/predict_proba", json=[row]) for row in ROWS]

    assert (await together.get_json())["probabilities"] == [
        pytest.approx((await response.get_json())["probabilities"][0], rel=1e-12)
        for response in alone
    ]


async def test_concurrent_requests_batch_and_match(
    client: Client, model: Any, registry: CollectorRegistry
) -> None:
    """Concurrent one-row requests share model calls and each answers as pandas does."""
    rows = [ROWS[i % len(ROWS)] for i in range(CONCURRENT)]

    responses = await asyncio.gather(*(client.post("/predict", json=[row]) for row in rows))

    answers = [(await r.get_json())["prediction"][0] for r in responses]
    assert answers == model.predict(pd.DataFrame(rows)).tolist()
    calls = registry.get_sample_value("prediction_batch_rows_count", {"model": "loans"})
    assert calls is not None
    assert calls < CONCURRENT


async def test_unknown_category_fails_only_its_request(client: Client) -> None:
    """An unknown category makes the model raise: its request is a 400, the batch's others 200."""
    rows = [ROWS[i % len(ROWS)] for i in range(CONCURRENT)]
    rows[5] = {**ROWS[0], "purpose": "holiday"}

    responses = await asyncio.gather(*(client.post("/predict", json=[row]) for row in rows))

    assert [r.status_code for r in responses] == [400 if i == 5 else 200 for i in range(CONCURRENT)]
    assert "unknown categories" in (await responses[5].get_json())["error"]


V2_DATATYPES = {"string": "BYTES", "bool": "BOOL", "int": "INT64", "float": "FP64"}


def v2_inputs(rows: list[dict[str, Any]], schema: FeatureSchema) -> list[dict[str, Any]]:
    return [
        {
            "name": feature.name,
            "datatype": V2_DATATYPES[feature.type],
            "shape": [len(rows)],
            "data": [row.get(feature.name) for row in rows],
        }
        for feature in schema.features
    ]


async def test_v2_infer_json_matches_pandas(
    client: Client, model: Any, schema: FeatureSchema
) -> None:
    """V2 infer with one JSON tensor per feature (BYTES, BOOL, INT64, FP64, nulls) answers
    the model's labels and probabilities on pd.DataFrame(rows)."""
    response = await client.post(
        "/v2/models/loans/infer",
        json={
            "inputs": v2_inputs(ROWS, schema),
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        },
    )

    outputs = (await response.get_json())["outputs"]
    frame = pd.DataFrame(ROWS)
    assert outputs[0] == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [3],
        "data": model.predict(frame).tolist(),
    }
    assert outputs[1]["data"] == model.predict_proba(frame).ravel().tolist()


async def test_v2_bad_tensor_is_400(client: Client, schema: FeatureSchema) -> None:
    """A feature's tensor of the wrong datatype is a 400 naming the input."""
    inputs = v2_inputs(ROWS, schema)
    inputs[3]["datatype"] = "FP64"

    response = await client.post("/v2/models/loans/infer", json={"inputs": inputs})

    assert (response.status_code, await response.get_json()) == (
        400,
        {"error": "Input 'age' has datatype 'FP64'; feature 'age' (int) takes INT64, INT32."},
    )


async def test_v2_metadata_lists_the_features(client: Client, schema: FeatureSchema) -> None:
    """Model metadata lists one input per feature with its datatype."""
    response = await client.get("/v2/models/loans")

    assert (await response.get_json())["inputs"] == [
        {"name": feature.name, "datatype": V2_DATATYPES[feature.type], "shape": [-1]}
        for feature in schema.features
    ]


def first_label(body: dict[str, Any]) -> Any:
    """The first label of a /predict, V1 or V2 answer."""
    if "prediction" in body:
        return body["prediction"][0]
    if "predictions" in body:
        return body["predictions"][0]
    return body["outputs"][0]["data"][0]


async def test_three_protocols_share_batches(
    client: Client, model: Any, schema: FeatureSchema, registry: CollectorRegistry
) -> None:
    """/predict, V1 and V2 requests for a table model arriving together share model calls and
    each gets the labels pandas gives its rows."""
    rows = [ROWS[i % len(ROWS)] for i in range(CONCURRENT)]

    def send(index: int, row: dict[str, Any]) -> Any:
        if index % 3 == 0:
            return client.post("/predict", json={"features": [row]})
        if index % 3 == 1:
            return client.post("/v1/models/loans:predict", json={"instances": [row]})
        return client.post("/v2/models/loans/infer", json={"inputs": v2_inputs([row], schema)})

    responses = await asyncio.gather(*(send(i, row) for i, row in enumerate(rows)))

    labels = [first_label(await response.get_json()) for response in responses]
    assert labels == model.predict(pd.DataFrame(rows)).tolist()
    calls = registry.get_sample_value("prediction_batch_rows_count", {"model": "loans"})
    assert calls is not None
    assert calls < CONCURRENT
