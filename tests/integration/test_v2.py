"""Open Inference Protocol (V2) REST routes through the app, with raw JSON bodies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry
from quart import Quart
from sklearn.datasets import load_diabetes
from sklearn.datasets import load_iris

from service import __version__
from service.demo import IRIS_FEATURES
from service.http import create_app
from service.http.state import get_state
from service.settings import Settings
from service.store import ModelStore
from tests.fakes import SumModel
from tests.types import Client

SETOSA = [5.1, 3.5, 1.4, 0.2]
VIRGINICA = [6.9, 3.1, 5.4, 2.1]
TEXT_REFUSED = "Expected a JSON body (Content-Type: application/json), got text/plain."


def matrix_input(rows: list[list[Any]], datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    """One [N, 4] tensor with flat data, as tritonclient sends it."""
    flat = [value for row in rows for value in row]
    shape = [len(rows), len(rows[0])]
    return {"name": "input-0", "shape": shape, "datatype": datatype, "data": flat, **extra}


async def infer(client: Client, body: object, path: str = "/v2/models/iris/infer") -> Any:
    """POST ``body`` as JSON with no Content-Type, as tritonclient does; return the response."""
    return await client.post(path, data=orjson.dumps(body))


def iris_answer(labels: list[int]) -> dict[str, object]:
    """The whole V2 response of iris version 1 answering ``labels`` as its predict output."""
    return {
        "model_name": "iris",
        "model_version": "1",
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [len(labels)], "data": labels}
        ],
    }


async def error_of(response: Any) -> tuple[int, str]:
    return response.status_code, (await response.get_json())["error"]


async def test_server_metadata(client: Client) -> None:
    """GET /v2 names the server, its version and its extensions."""
    response = await client.get("/v2")

    expected = {
        "name": "prediction-service",
        "version": __version__,
        "extensions": ["binary_tensor_data", "model_repository"],
    }
    assert expected == await response.get_json()


async def test_server_live_and_ready(client: Client) -> None:
    """A started server is live and ready."""
    live = await client.get("/v2/health/live")
    ready = await client.get("/v2/health/ready")

    assert (200, {"live": True}, 200, {"ready": True}) == (
        live.status_code,
        await live.get_json(),
        ready.status_code,
        await ready.get_json(),
    )


async def test_server_not_ready_while_draining(app: Quart, client: Client) -> None:
    """Readiness turns 503 with Retry-After once the server drains, as /readyz does."""
    get_state(app).draining = True

    response = await client.get("/v2/health/ready")

    assert (503, "1") == (response.status_code, response.headers["Retry-After"])


async def test_server_not_ready_before_models_load(settings: Settings) -> None:
    """Before the models have loaded, readiness is 503 (liveness is not)."""
    app = create_app(settings)  # not started: no lifespan, so nothing is loaded
    client = app.test_client()

    live = await client.get("/v2/health/live")
    ready = await client.get("/v2/health/ready")

    assert (200, {"live": True}, 503, {"error": "No model is loaded yet."}) == (
        live.status_code,
        await live.get_json(),
        ready.status_code,
        await ready.get_json(),
    )


async def test_model_metadata(client: Client) -> None:
    """Model metadata gives the platform, versions, the one matrix input, both outputs and the
    engine serving the version."""
    response = await client.get("/v2/models/iris")

    assert {
        "name": "iris",
        "versions": ["1"],
        "platform": "scikit-learn",
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        ],
        "parameters": {
            "version": "1",
            "task": "classification",
            "feature_names": list(IRIS_FEATURES),
            "classes": [0, 1, 2],
            "engine": "trees",
        },
    } == await response.get_json()


async def test_regressor_metadata(client: Client) -> None:
    """A regressor's only output is an FP64 predict."""
    body = await (await client.get("/v2/models/diabetes/versions/1")).get_json()

    assert ([{"name": "predict", "datatype": "FP64", "shape": [-1]}], [-1, 10]) == (
        body["outputs"],
        body["inputs"][0]["shape"],
    )


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/v2/models/nope", 404, "Model 'nope' is not loaded."),
        ("/v2/models/iris/versions/9", 404, "Version 9 of model 'iris' is not loaded."),
        ("/v2/models/iris/versions/abc", 400, "Version must be a positive integer, got 'abc'."),
        ("/v2/models/nope/ready", 404, "Model 'nope' is not loaded."),
        ("/v2/models/iris/versions/9/ready", 404, "Version 9 of model 'iris' is not loaded."),
    ],
)
async def test_unknown_model_or_version(
    client: Client, path: str, status: int, message: str
) -> None:
    """Unknown models and versions are 404; a version that is not a number is 400."""
    assert (status, message) == await error_of(await client.get(path))


async def test_model_ready(client: Client) -> None:
    """A served model (and its pinned version) is ready."""
    plain = await client.get("/v2/models/iris/ready")
    pinned = await client.get("/v2/models/iris/versions/1/ready")

    assert [(200, {"name": "iris", "ready": True})] * 2 == [
        (plain.status_code, await plain.get_json()),
        (pinned.status_code, await pinned.get_json()),
    ]


async def test_infer_matrix(client: Client, store_root: Path) -> None:
    """One [N, 4] FP64 tensor with flat data is answered as model.predict answers it."""
    X, _ = load_iris(return_X_y=True)
    model = ModelStore(store_root).load("iris", 1).model

    response = await infer(client, {"inputs": [matrix_input(X.tolist())]})

    assert {
        "model_name": "iris",
        "model_version": "1",
        "outputs": [
            {
                "name": "predict",
                "datatype": "INT64",
                "shape": [150],
                "data": model.predict(X).tolist(),
            }
        ],
    } == await response.get_json()


async def test_infer_nested_data(client: Client) -> None:
    """Data nested as the shape says is read like the same data flat."""
    nested = {"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [SETOSA, VIRGINICA]}

    flat = await (await infer(client, {"inputs": [matrix_input([SETOSA, VIRGINICA])]})).get_json()
    response = await infer(client, {"inputs": [nested]})

    assert flat["outputs"] == (await response.get_json())["outputs"]


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
async def test_infer_float_datatypes(client: Client, store_root: Path, datatype: str) -> None:
    """FP32 and FP64 tensors are both accepted; FP32 values are taken at float32 precision."""
    X, _ = load_iris(return_X_y=True)
    dtype = np.float32 if datatype == "FP32" else np.float64
    sent = X.astype(dtype)
    model = ModelStore(store_root).load("iris", 1).model

    response = await infer(client, {"inputs": [matrix_input(sent.tolist(), datatype)]})

    expected = model.predict(sent.astype(np.float64)).tolist()
    assert expected == (await response.get_json())["outputs"][0]["data"]


@pytest.mark.parametrize("datatype", ["INT32", "INT64"])
async def test_infer_integer_datatypes(client: Client, store_root: Path, datatype: str) -> None:
    """INT32 and INT64 tensors of integers are answered as the same rows as floats."""
    rows = [[5, 3, 1, 0], [7, 3, 5, 2]]
    model = ModelStore(store_root).load("iris", 1).model

    response = await infer(client, {"inputs": [matrix_input(rows, datatype)]})

    assert (200, iris_answer(model.predict(np.array(rows, dtype=np.float64)).tolist())) == (
        response.status_code,
        await response.get_json(),
    )


async def test_infer_per_feature_inputs(client: Client) -> None:
    """One [N] tensor per feature, in any order, equals the same rows as one matrix."""
    rows = [SETOSA, VIRGINICA]
    columns = [
        {"name": name, "shape": [2], "datatype": "FP64", "data": [row[i] for row in rows]}
        for i, name in enumerate(IRIS_FEATURES)
    ]
    outputs = [{"name": "predict"}, {"name": "predict_proba"}]

    by_matrix = await infer(client, {"inputs": [matrix_input(rows)], "outputs": outputs})
    by_feature = await infer(client, {"inputs": columns[::-1], "outputs": outputs})

    assert (await by_matrix.get_json())["outputs"] == (await by_feature.get_json())["outputs"]


async def test_infer_per_feature_column_shape(client: Client) -> None:
    """A per-feature tensor may also have shape [N, 1] (MLServer's column form)."""
    columns = [
        {"name": name, "shape": [1, 1], "datatype": "FP64", "data": [value]}
        for name, value in zip(IRIS_FEATURES, SETOSA, strict=True)
    ]

    response = await infer(client, {"inputs": columns})

    assert [0] == (await response.get_json())["outputs"][0]["data"]


def _columns(**overrides: Any) -> list[dict[str, Any]]:
    columns = {
        name: {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
        for name, value in zip(IRIS_FEATURES, SETOSA, strict=True)
    }
    for name, column in overrides.items():
        if column is None:
            del columns[name]
        else:
            columns[name] = {"name": name, "shape": [1], "datatype": "FP64", **column}
    return list(columns.values())


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (_columns(petal_width=None), "Input 'petal_width' is missing"),
        (_columns(petal_color={"data": [1.0]}), "Unknown input 'petal_color'"),
        (_columns(sepal_length={"shape": [2], "data": [1.0, 2.0]}), "the same N"),
        ([matrix_input([SETOSA], "BYTES")], "datatype 'BYTES'"),
        ([matrix_input([SETOSA], "FP16")], "datatype 'FP16'"),
        ([{**matrix_input([SETOSA]), "datatype": 64}], "datatype 64"),
        ([matrix_input([[5, 3, 1.5, 0]], "INT64")], "1.5 is not an integer"),
        ([matrix_input([[5, 3, 1, 2**40]], "INT32")], "out of the INT32 range"),
        ([matrix_input([[5.1, 3.5, "1.4", 0.2]])], "'1.4' is not a number"),
        ([matrix_input([[5.1, 3.5, True, 0.2]])], "true is not a number"),
        ([matrix_input([SETOSA], shape=[2, 4])], "shape [2, 4] (8 values) but 4 values"),
        ([matrix_input([SETOSA[:3]])], "must have shape [N, 4] (N rows of 4 features), got [1, 3]"),
        ([matrix_input([SETOSA], shape=[4])], "must have shape [N, 4]"),
        ([matrix_input([SETOSA], shape=[1, -4])], '"shape"'),
        (
            [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [SETOSA, [1.0]]}],
            "nested differently",
        ),
        ([{"name": "x", "shape": [0, 4], "datatype": "FP64", "data": []}], "no rows"),
        ([{"name": "x", "shape": [1, 4], "datatype": "FP64"}], 'no "data"'),
        ([{**matrix_input([SETOSA], "FP32"), "data": [1e39, 0, 0, 0]}], "must be finite"),
        ([], '"inputs" must be a non-empty array'),
    ],
)
async def test_invalid_inputs(client: Client, inputs: list[Any], message: str) -> None:
    """Inputs that do not fit the protocol or the model are 400, naming the input and problem."""
    status, error = await error_of(await infer(client, {"inputs": inputs}))

    assert (400, True) == (status, message in error), error


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"inputs": [matrix_input([SETOSA])], "outputs": [{"name": "explain"}]},
            "Unknown output 'explain'; model 'iris' has: predict, predict_proba.",
        ),
        (
            {"inputs": [matrix_input([SETOSA])], "outputs": {"name": "predict"}},
            '"outputs" must be an array of {"name": ...} objects.',
        ),
        ({"inputs": [matrix_input([SETOSA])], "id": 7}, '"id" must be a string.'),
        ([matrix_input([SETOSA])], 'The body must be a JSON object with an "inputs" array.'),
    ],
)
async def test_invalid_request(client: Client, body: object, message: str) -> None:
    """Unknown outputs and ill-typed fields are 400 with a message saying so."""
    assert (400, message) == await error_of(await infer(client, body))


async def test_regressor_has_no_predict_proba(client: Client) -> None:
    """Asking a regressor for predict_proba is an unknown output: 400."""
    body = {"inputs": [matrix_input([[0.0] * 10])], "outputs": [{"name": "predict_proba"}]}

    status, error = await error_of(await infer(client, body, "/v2/models/diabetes/infer"))

    assert (400, "Unknown output 'predict_proba'; model 'diabetes' has: predict.") == (
        status,
        error,
    )


async def test_predict_proba_output(client: Client, store_root: Path) -> None:
    """predict_proba, asked through outputs, is FP64 of shape [N, n_classes], data row-major."""
    rows = [SETOSA, VIRGINICA]
    model = ModelStore(store_root).load("iris", 1).model
    body = {"inputs": [matrix_input(rows)], "outputs": [{"name": "predict_proba"}]}

    output = (await (await infer(client, body)).get_json())["outputs"][0]

    assert ("predict_proba", "FP64", [2, 3]) == (
        output["name"],
        output["datatype"],
        output["shape"],
    )
    np.testing.assert_allclose(model.predict_proba(np.array(rows)).ravel(), output["data"])


async def test_regressor_output(client: Client, store_root: Path) -> None:
    """A regressor's predict is FP64 and equals model.predict."""
    X, _ = load_diabetes(return_X_y=True)
    model = ModelStore(store_root).load("diabetes", 1).model
    body = {"inputs": [matrix_input(X[:20].tolist())]}

    output = (await (await infer(client, body, "/v2/models/diabetes/infer")).get_json())["outputs"][
        0
    ]

    assert ("FP64", model.predict(X[:20]).tolist()) == (output["datatype"], output["data"])


async def test_id_echoed(client: Client) -> None:
    """The request's id comes back in the response."""
    body = {"id": "request-42", "inputs": [matrix_input([SETOSA])]}

    assert "request-42" == (await (await infer(client, body)).get_json())["id"]


async def test_model_headers(client: Client) -> None:
    """Inference responses name the model and version that answered."""
    response = await infer(client, {"inputs": [matrix_input([SETOSA])]})

    assert ("iris", "1") == (
        response.headers["X-Model-Name"],
        response.headers["X-Model-Version"],
    )


async def test_unknown_model_infer(client: Client) -> None:
    """Inference on a model that is not served is 404."""
    response = await infer(client, {"inputs": [matrix_input([SETOSA])]}, "/v2/models/nope/infer")

    assert (404, "Model 'nope' is not loaded.") == await error_of(response)


async def test_pinned_version(store_root: Path, settings: Settings) -> None:
    """/versions/{v}/infer answers with that version; the plain path with the newest."""
    ModelStore(store_root).save(SumModel(4), "iris", format="joblib")
    app = create_app(settings)
    body = {"inputs": [matrix_input([SETOSA])]}
    async with app.test_app():
        client = app.test_client()
        pinned = await (await infer(client, body, "/v2/models/iris/versions/1/infer")).get_json()
        newest = await (await infer(client, body)).get_json()

    assert [("1", "INT64", [0]), ("2", "FP64", [sum(SETOSA)])] == [
        (each["model_version"], each["outputs"][0]["datatype"], each["outputs"][0]["data"])
        for each in (pinned, newest)
    ]


# What clients send: tritonclient none, `curl -d` form-urlencoded, others text/plain or JSON.
ANY_CONTENT_TYPE = [
    {},
    {"Content-Type": "application/x-www-form-urlencoded"},
    {"Content-Type": "text/plain"},
    {"Content-Type": "application/json"},
    {"Content-Type": "application/json; charset=utf-8"},
]


@pytest.mark.parametrize("headers", ANY_CONTENT_TYPE)
async def test_body_read_as_json_whatever_its_content_type(
    client: Client, headers: dict[str, str]
) -> None:
    """A body is read as JSON whatever its Content-Type says, as Triton does."""
    response = await client.post(
        "/v2/models/iris/infer",
        data=orjson.dumps({"inputs": [matrix_input([SETOSA])]}),
        headers=headers,
    )

    assert (200, [0]) == (response.status_code, (await response.get_json())["outputs"][0]["data"])


@pytest.mark.parametrize("headers", ANY_CONTENT_TYPE)
async def test_invalid_json_is_400_whatever_its_content_type(
    client: Client, headers: dict[str, str]
) -> None:
    """A body that is not JSON is 400, whatever its Content-Type says."""
    response = await client.post("/v2/models/iris/infer", data=b"inputs=1", headers=headers)

    status, error = await error_of(response)
    assert (400, True) == (status, error.startswith("The body is not valid JSON")), error


async def test_binary_body_with_text_content_type_rejected(client: Client) -> None:
    """The binary tensor extension keeps its rules: a text/plain binary body is 415."""
    body, headers = binary_body(np.array([SETOSA]), "FP64")

    response = await client.post(
        "/v2/models/iris/infer", data=body, headers={**headers, "Content-Type": "text/plain"}
    )

    assert (415, "Expected a JSON body (Content-Type: application/json), got text/plain.") == (
        await error_of(response)
    )


async def test_too_many_rows(store_root: Path) -> None:
    """A tensor with more rows than PREDICTION_MAX_REQUEST_ROWS is 413."""
    app = create_app(Settings(model_store=store_root, max_request_rows=1))
    async with app.test_app():
        response = await infer(app.test_client(), {"inputs": [matrix_input([SETOSA] * 2)]})

    assert (413, "The request has 2 rows; at most 1 are allowed.") == await error_of(response)


def binary_body(
    rows: np.ndarray[Any, Any], datatype: str, **request: Any
) -> tuple[bytes, dict[str, str]]:
    """A binary tensor extension body: the JSON header, then the raw little-endian bytes."""
    raw = rows.tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": list(rows.shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            **request,
        }
    )
    return header + raw, {"Inference-Header-Content-Length": str(len(header))}


@pytest.mark.parametrize(
    ("dtype", "datatype"),
    [("<f8", "FP64"), ("<f4", "FP32"), ("<i4", "INT32"), ("<i8", "INT64")],
)
async def test_binary_tensor_data(
    client: Client, store_root: Path, dtype: str, datatype: str
) -> None:
    """Raw tensor bytes after the JSON header (tritonclient's default) are read by datatype."""
    X, _ = load_iris(return_X_y=True)
    sent = (X * 10 if datatype.startswith("INT") else X).astype(dtype)
    model = ModelStore(store_root).load("iris", 1).model
    body, headers = binary_body(sent, datatype)

    response = await client.post("/v2/models/iris/infer", data=body, headers=headers)

    expected = model.predict(sent.astype(np.float64)).tolist()
    assert expected == (await response.get_json())["outputs"][0]["data"]


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda body, n: (body + b"\0", n), "1 bytes of binary data that no input claims"),
        (lambda body, n: (body[:-1], n), "needs 32 bytes of binary data"),
        (lambda body, n: (body, "x"), "Inference-Header-Content-Length must be a byte count"),
        (lambda body, n: (body, str(len(body) + 1)), "but the body has"),
        (lambda body, n: (body, str(int(n) - 1)), "The JSON header is not valid JSON"),
    ],
)
async def test_bad_binary_body(client: Client, mangle: Any, message: str) -> None:
    """A binary body whose parts do not add up is 400 saying how."""
    body, headers = binary_body(np.array([SETOSA]), "FP64")
    body, length = mangle(body, headers["Inference-Header-Content-Length"])

    response = await client.post(
        "/v2/models/iris/infer", data=body, headers={"Inference-Header-Content-Length": length}
    )

    status, error = await error_of(response)
    assert (400, True) == (status, message in error), error


async def test_binary_non_finite_rejected(client: Client) -> None:
    """NaN can arrive only as binary data, and is refused like any non-finite value."""
    body, headers = binary_body(np.array([[5.1, np.nan, 1.4, 0.2]]), "FP64")

    response = await client.post("/v2/models/iris/infer", data=body, headers=headers)

    assert (400, "Row 0, feature 'sepal_width': values must be finite numbers.") == (
        await error_of(response)
    )


async def test_invalid_request_counted(store_root: Path) -> None:
    """An invalid V2 request for a served model counts as invalid in the metrics."""
    registry = CollectorRegistry()
    app = create_app(Settings(model_store=store_root), metrics_registry=registry)
    async with app.test_app():
        await infer(app.test_client(), {"inputs": [matrix_input([SETOSA], "BYTES")]})

    labels = {"model": "iris", "version": "1", "outcome": "invalid"}
    assert 1.0 == registry.get_sample_value("prediction_requests_total", labels)


async def test_protocols_share_batches(store_root: Path) -> None:
    """/predict, V1 and V2 requests arriving together are answered by one model call."""
    registry = CollectorRegistry()
    settings = Settings(
        model_store=store_root, default_model="iris", max_batch_rows=3, max_wait_ms=10_000.0
    )
    app = create_app(settings, metrics_registry=registry)
    async with app.test_app():
        client = app.test_client()
        responses = await asyncio.gather(
            client.post("/predict", json={"features": [SETOSA]}),
            client.post("/v1/models/iris:predict", json={"instances": [VIRGINICA]}),
            infer(client, {"inputs": [matrix_input([SETOSA])]}),
        )
        answers = [await response.get_json() for response in responses]

    assert [[0], [2], [0]] == [
        answers[0]["prediction"],
        answers[1]["predictions"],
        answers[2]["outputs"][0]["data"],
    ]
    # Three requests, three rows, one model call: the batch filled from all three protocols.
    assert (3.0, 1.0) == (
        registry.get_sample_value("prediction_batch_rows_sum", {"model": "iris"}),
        registry.get_sample_value("prediction_batch_rows_count", {"model": "iris"}),
    )


def split_binary_response(response_body: bytes, header_length: str) -> tuple[Any, bytes]:
    length = int(header_length)
    return orjson.loads(response_body[:length]), response_body[length:]


async def test_binary_outputs(client: Client, store_root: Path) -> None:
    """binary_data_output answers each output as raw little-endian bytes after the JSON header,
    with Inference-Header-Content-Length and the same values as JSON."""
    X, _ = load_iris(return_X_y=True)
    model = ModelStore(store_root).load("iris", 1).model
    body = {
        "inputs": [matrix_input(X.tolist())],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        "parameters": {"binary_data_output": True},
    }

    response = await infer(client, body)
    header, raw = split_binary_response(
        await response.get_data(), response.headers["Inference-Header-Content-Length"]
    )

    n = len(X)
    assert ("application/octet-stream", "iris", "1") == (
        response.mimetype,
        header["model_name"],
        header["model_version"],
    )
    assert [
        {
            "name": "predict",
            "datatype": "INT64",
            "shape": [n],
            "parameters": {"binary_data_size": 8 * n},
        },
        {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [n, 3],
            "parameters": {"binary_data_size": 24 * n},
        },
    ] == header["outputs"]
    assert model.predict(X).tolist() == np.frombuffer(raw[: 8 * n], "<i8").tolist()
    np.testing.assert_allclose(
        model.predict_proba(X),
        np.frombuffer(raw[8 * n :], "<f8").reshape(n, 3),
        rtol=0,
        atol=1e-12,
    )


async def test_binary_and_json_outputs_mixed(client: Client) -> None:
    """Per-output binary_data picks which outputs are binary; the others keep JSON data."""
    body = {
        "inputs": [matrix_input([SETOSA, VIRGINICA])],
        "outputs": [
            {"name": "predict", "parameters": {"binary_data": False}},
            {"name": "predict_proba", "parameters": {"binary_data": True}},
        ],
    }

    response = await infer(client, body)
    header, raw = split_binary_response(
        await response.get_data(), response.headers["Inference-Header-Content-Length"]
    )

    assert ([0, 2], {"binary_data_size": 48}, 48) == (
        header["outputs"][0]["data"],
        header["outputs"][1]["parameters"],
        len(raw),
    )


async def test_json_outputs_without_binary_header(client: Client) -> None:
    """Without binary flags the response is plain JSON with no Inference-Header-Content-Length."""
    response = await infer(client, {"inputs": [matrix_input([SETOSA])]})

    assert ("application/json", None, iris_answer([0])) == (
        response.mimetype,
        response.headers.get("Inference-Header-Content-Length"),
        await response.get_json(),
    )


@pytest.mark.parametrize("path", ["/v2/models/iris/config", "/v2/models/iris/versions/1/config"])
async def test_model_config(client: Client, path: str) -> None:
    """The model config is Triton's JSON: max_batch_size is the per-request row limit, dims
    exclude the batch dimension, and dynamic batching is on."""
    response = await client.get(path)
    config = await response.get_json()

    assert (
        200,
        "iris",
        "scikit-learn",
        1024,
        [{"name": "input-0", "data_type": "TYPE_FP64", "dims": [4]}],
        ["predict", "predict_proba"],
        {"preferred_batch_size": [], "max_queue_delay_microseconds": 0, "preserve_ordering": False},
    ) == (
        response.status_code,
        config["name"],
        config["platform"],
        config["max_batch_size"],
        [{k: t[k] for k in ("name", "data_type", "dims")} for t in config["input"]],
        [t["name"] for t in config["output"]],
        config["dynamic_batching"],
    )


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/v2/models/nope/config", 404),
        ("/v2/models/iris/versions/9/config", 404),
        ("/v2/models/iris/versions/x/config", 400),
    ],
)
async def test_model_config_unknown(client: Client, path: str, status: int) -> None:
    """An unknown model or version is 404, a malformed version 400."""
    response = await client.get(path)

    assert status == response.status_code
