"""NVIDIA's ``tritonclient.http``, unchanged, against a real server process."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton  # type: ignore[import-untyped]
from sklearn.datasets import load_iris
from tritonclient.utils import InferenceServerException  # type: ignore[import-untyped]

from service import __version__
from service.store import ModelStore
from tests.helpers import serve_process
from tests.loans import ROWS


@pytest.fixture(name="model_store", scope="module")
def _model_store(demo_store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo store (as ``store_root``) shared by this module's server."""
    root = tmp_path_factory.mktemp("tritonclient") / "model_store"
    shutil.copytree(demo_store_template, root)
    return root


@pytest.fixture(name="client", scope="module")
def _client(
    model_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[triton.InferenceServerClient]:
    logs = tmp_path_factory.mktemp("tritonclient-logs")
    with serve_process(
        logs, "--model-store", str(model_store), "--default-model", "iris"
    ) as server:
        client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
        try:
            yield client
        finally:
            client.close()


@pytest.fixture(name="model", scope="module")
def _model(model_store: Path) -> Any:
    return ModelStore(model_store).load("iris", 1).model


@pytest.fixture(name="X", scope="module")
def _iris_features() -> np.ndarray[Any, Any]:
    X, _ = load_iris(return_X_y=True)
    return np.asarray(X, dtype=np.float64)


def matrix(X: np.ndarray[Any, Any], datatype: str, *, binary: bool = False) -> triton.InferInput:
    tensor = triton.InferInput("input-0", list(X.shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=binary)
    return tensor


def test_server_live(client: triton.InferenceServerClient) -> None:
    """is_server_live is true."""
    assert client.is_server_live()


def test_server_ready(client: triton.InferenceServerClient) -> None:
    """is_server_ready is true once the server has loaded its models."""
    assert client.is_server_ready()


def test_model_ready(client: triton.InferenceServerClient) -> None:
    """is_model_ready is true for a served model (and version), false for an unknown one."""
    assert (True, True, False) == (
        client.is_model_ready("iris"),
        client.is_model_ready("iris", "1"),
        client.is_model_ready("nope"),
    )


def test_server_metadata(client: triton.InferenceServerClient) -> None:
    """get_server_metadata names the server and its version."""
    metadata = client.get_server_metadata()

    assert ("prediction-service", __version__) == (metadata["name"], metadata["version"])


def test_model_metadata(client: triton.InferenceServerClient) -> None:
    """get_model_metadata describes the input and both outputs."""
    metadata = client.get_model_metadata("iris")

    assert (
        "iris",
        "scikit-learn",
        [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}],
        [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 3]},
        ],
    ) == (metadata["name"], metadata["platform"], metadata["inputs"], metadata["outputs"])


def test_infer_fp64(
    client: triton.InferenceServerClient, model: Any, X: np.ndarray[Any, Any]
) -> None:
    """infer with an FP64 input answers model.predict on the whole dataset."""
    result = client.infer("iris", [matrix(X, "FP64")])

    assert model.predict(X).tolist() == result.as_numpy("predict").tolist()


def test_infer_fp32(
    client: triton.InferenceServerClient, model: Any, X: np.ndarray[Any, Any]
) -> None:
    """infer with an FP32 input answers model.predict on the same float32 values."""
    X32 = X.astype(np.float32)

    result = client.infer("iris", [matrix(X32, "FP32")])

    assert model.predict(X32.astype(np.float64)).tolist() == result.as_numpy("predict").tolist()


def test_infer_binary_data(
    client: triton.InferenceServerClient, model: Any, X: np.ndarray[Any, Any]
) -> None:
    """infer with tritonclient's defaults (binary tensors both ways) is answered the same."""
    outputs = [triton.InferRequestedOutput("predict")]

    result = client.infer("iris", [matrix(X, "FP64", binary=True)], outputs=outputs)

    assert model.predict(X).tolist() == result.as_numpy("predict").tolist()


def test_infer_predict_proba(
    client: triton.InferenceServerClient, model: Any, X: np.ndarray[Any, Any]
) -> None:
    """predict_proba requested via InferRequestedOutput equals model.predict_proba."""
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=False),
        triton.InferRequestedOutput("predict_proba", binary_data=False),
    ]

    result = client.infer("iris", [matrix(X, "FP64")], outputs=outputs, request_id="7")

    assert ("7", model.predict(X).tolist()) == (
        result.get_response()["id"],
        result.as_numpy("predict").tolist(),
    )
    np.testing.assert_allclose(
        model.predict_proba(X), result.as_numpy("predict_proba"), rtol=0, atol=1e-12
    )


def test_infer_pinned_version(
    client: triton.InferenceServerClient, model: Any, X: np.ndarray[Any, Any]
) -> None:
    """infer with model_version goes to that version."""
    result = client.infer("iris", [matrix(X[:5], "FP64")], model_version="1")

    assert ("1", model.predict(X[:5]).tolist()) == (
        result.get_response()["model_version"],
        result.as_numpy("predict").tolist(),
    )


def test_error_reaches_client(client: triton.InferenceServerClient) -> None:
    """The server's one-sentence error is what tritonclient raises."""
    tensor = triton.InferInput("input-0", [1, 3], "FP64")
    tensor.set_data_from_numpy(np.zeros((1, 3)), binary_data=False)

    with pytest.raises(InferenceServerException) as raised:
        client.infer("iris", [tensor])

    assert "Input 'input-0' must have shape [N, 4] (N rows of 4 features), got [1, 3]." == (
        raised.value.message()
    )


def test_model_config(client: triton.InferenceServerClient) -> None:
    """get_model_config answers Triton's config shape: batching along the first dimension."""
    config = client.get_model_config("iris", "1")

    assert (
        "iris",
        1024,
        [("input-0", "TYPE_FP64", [4])],
        [("predict", "TYPE_INT64", [1]), ("predict_proba", "TYPE_FP64", [3])],
        True,
    ) == (
        config["name"],
        config["max_batch_size"],
        [(t["name"], t["data_type"], t["dims"]) for t in config["input"]],
        [(t["name"], t["data_type"], t["dims"]) for t in config["output"]],
        "dynamic_batching" in config,
    )


@pytest.mark.parametrize("output", ["predict", "predict_proba"])
def test_binary_outputs_equal_json_outputs(
    client: triton.InferenceServerClient, X: np.ndarray[Any, Any], output: str
) -> None:
    """InferRequestedOutput(binary_data=True) round-trips the values JSON data gives."""
    binary = client.infer(
        "iris", [matrix(X, "FP64")], outputs=[triton.InferRequestedOutput(output)]
    )
    json = client.infer(
        "iris",
        [matrix(X, "FP64")],
        outputs=[triton.InferRequestedOutput(output, binary_data=False)],
    )

    assert ({"binary_data_size": binary.as_numpy(output).nbytes}, None) == (
        binary.get_output(output)["parameters"],
        json.get_output(output).get("parameters"),
    )
    assert json.as_numpy(output).tolist() == binary.as_numpy(output).tolist()


def test_default_outputs_are_binary(
    client: triton.InferenceServerClient, model: Any, X: np.ndarray[Any, Any]
) -> None:
    """infer without outputs (binary_data_output) answers predict as binary data."""
    result = client.infer("iris", [matrix(X, "FP64", binary=True)])

    assert (True, model.predict(X).tolist()) == (
        "binary_data_size" in result.get_output("predict")["parameters"],
        result.as_numpy("predict").tolist(),
    )


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compression_both_ways(
    client: triton.InferenceServerClient, model: Any, X: np.ndarray[Any, Any], algorithm: str
) -> None:
    """tritonclient's request and response compression round-trip (a large response)."""
    result = client.infer(
        "iris",
        [matrix(X, "FP64", binary=True)],
        outputs=[triton.InferRequestedOutput("predict_proba", binary_data=False)],
        request_compression_algorithm=algorithm,
        response_compression_algorithm=algorithm,
    )

    np.testing.assert_allclose(
        model.predict_proba(X), result.as_numpy("predict_proba"), rtol=0, atol=1e-12
    )


# A table model: one tensor per feature, BYTES for strings and BOOL for flags.
LOANS_DATATYPES = {
    "purpose": ("BYTES", np.object_),
    "employment": ("BYTES", np.object_),
    "owns_home": ("BOOL", np.bool_),
    "age": ("INT64", np.int64),
    "income": ("FP64", np.float64),
    "loan_amount": ("FP64", np.float64),
    "open_accounts": ("INT64", np.int64),
}
LOANS_ROWS = [ROWS[0], ROWS[2]]


def loans_inputs(rows: list[dict[str, Any]], *, binary: bool) -> list[triton.InferInput]:
    tensors = []
    for name, (datatype, dtype) in LOANS_DATATYPES.items():
        values: np.ndarray[Any, Any] = np.array([row[name] for row in rows], dtype=dtype)
        if datatype == "BYTES":
            values = np.array([value.encode() for value in values], dtype=np.object_)
        tensor = triton.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        tensors.append(tensor)
    return tensors


@pytest.fixture(name="loans", scope="module")
def _loans(model_store: Path) -> Any:
    return ModelStore(model_store).load("loans", 1).model


def test_loans_metadata(client: triton.InferenceServerClient) -> None:
    """get_model_metadata lists a table model's features with their datatypes."""
    metadata = client.get_model_metadata("loans")

    assert [
        {"name": name, "datatype": datatype, "shape": [-1]}
        for name, (datatype, _) in LOANS_DATATYPES.items()
    ] == metadata["inputs"]


def test_loans_config(client: triton.InferenceServerClient) -> None:
    """get_model_config names a table model's inputs with Triton's types."""
    config = client.get_model_config("loans")

    assert [
        ("purpose", "TYPE_STRING"),
        ("employment", "TYPE_STRING"),
        ("owns_home", "TYPE_BOOL"),
        ("age", "TYPE_INT64"),
        ("income", "TYPE_FP64"),
        ("loan_amount", "TYPE_FP64"),
        ("open_accounts", "TYPE_INT64"),
    ] == [(t["name"], t["data_type"]) for t in config["input"]]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_loans_infer(client: triton.InferenceServerClient, loans: Any, binary: bool) -> None:
    """BYTES, BOOL, INT64 and FP64 tensors, as JSON or binary data, answer as pandas does."""
    outputs = [
        triton.InferRequestedOutput("predict", binary_data=binary),
        triton.InferRequestedOutput("predict_proba", binary_data=binary),
    ]

    result = client.infer("loans", loans_inputs(LOANS_ROWS, binary=binary), outputs=outputs)

    frame = pd.DataFrame(LOANS_ROWS)
    labels = result.as_numpy("predict").tolist()  # bytes from binary data, str from JSON
    assert [label.decode() if isinstance(label, bytes) else label for label in labels] == (
        loans.predict(frame).tolist()
    )
    assert result.as_numpy("predict_proba").tolist() == loans.predict_proba(frame).tolist()


def test_loans_unknown_category_reaches_client(client: triton.InferenceServerClient) -> None:
    """An unknown category is the model's one-sentence 400, as tritonclient raises it."""
    rows = [{**LOANS_ROWS[0], "purpose": "holiday"}]

    with pytest.raises(InferenceServerException) as raised:
        client.infer("loans", loans_inputs(rows, binary=True))

    assert "Found unknown categories ['holiday']" in raised.value.message()
