"""Hostile input: malformed, oversized, nested, mistyped, non-finite bodies all get a 4xx."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from tests.helpers import ServerProcess
from tests.helpers import serve_process

ROUTES = ("/predict", "/predict_proba", "/v1/models/iris:predict", "/v2/models/iris/infer")
LEAKS = re.compile(r"Traceback|File \"|/work/|/tmp/|site-packages")
ROW = [5.1, 3.5, 1.4, 0.2]


def v2(data: object, shape: object = (1, 4), datatype: object = "FP64", **extra: object) -> bytes:
    tensor = {"name": "input-0", "shape": shape, "datatype": datatype, "data": data, **extra}
    return json.dumps({"inputs": [tensor]}).encode()


CORPUS: list[bytes] = [
    # Malformed and truncated JSON, wrong encodings.
    b"",
    b" ",
    b"{",
    b"}",
    b"[",
    b'{"features": [[5.1, 3.5',
    b'{"features": [[5.1, 3.5, 1.4, 0.2]]',
    b"{features: [[1, 2, 3, 4]]}",
    b"{'features': [[1, 2, 3, 4]]}",
    b'{"features": [[1, 2, 3, 4,]]}',
    b'{"features": [[1, 2, 3, 4]]}}',
    b'\xef\xbb\xbf{"features": [[1, 2, 3, 4]]}',
    b'{"features": "\xff\xfe"}',
    b"\x00\x01\x02\x03",
    '{"features": [["\u202e", 1, 2, 3]]}'.encode(),
    b"null",
    b"true",
    b"42",
    b'"features"',
    # Non-finite and out-of-range numbers.
    b'{"features": [[NaN, 1, 2, 3]]}',
    b'{"features": [[Infinity, 1, 2, 3]]}',
    b'{"features": [[-Infinity, 1, 2, 3]]}',
    b'{"features": [[1e999, 1, 2, 3]]}',
    b'{"features": [[-1e999, 1, 2, 3]]}',
    b'{"features": [[' + b"9" * 400 + b", 1, 2, 3]]}",
    b'{"features": [[-0x10, 1, 2, 3]]}',
    # Wrong types and shapes.
    b'{"features": [["1", "2", "3", "4"]]}',
    b'{"features": [[true, false, true, false]]}',
    b'{"features": [[null, null, null, null]]}',
    b'{"features": [[{}, {}, {}, {}]]}',
    b'{"features": [[[1], [2], [3], [4]]]}',
    b'{"features": [[1, 2, 3]]}',
    b'{"features": [[1, 2, 3, 4, 5]]}',
    b'{"features": [[1, 2, 3, 4], [1, 2]]}',
    b'{"features": [[1, 2, 3, 4], 5]}',
    b'{"features": [5, [1, 2, 3, 4]]}',
    b'{"features": []}',
    b'{"features": [[]]}',
    b'{"features": {}}',
    b'{"features": "1,2,3,4"}',
    b'{"features": null}',
    b'{"instances": [{"sepal_length": 1}]}',
    b'{"instances": [{"bogus": 1, "sepal_length": 1, "sepal_width": 1, "petal_length": 1}]}',
    b'{"instances": [{"__proto__": 1}]}',
    b'{"features": [[1, 2, 3, 4]], "instances": [[1, 2]]}',
    b'{"inputs": "nope"}',
    b'{"inputs": []}',
    b'{"inputs": [null]}',
    b'{"inputs": [{}]}',
    # V2 tensors that lie about themselves.
    v2(ROW, datatype="FP16"),
    v2(ROW, datatype="BYTES"),
    v2(ROW, datatype=None),
    v2(ROW, shape=(2, 4)),
    v2(ROW, shape=(1, 5)),
    v2(ROW, shape=(-1, 4)),
    v2(ROW, shape=(10**12, 4)),
    v2(ROW, shape=(2**63, 4)),
    v2(ROW, shape="1,4"),
    v2(ROW, shape=(1.5, 4)),
    v2(["a", "b", "c", "d"]),
    v2([1, 2, 3, 2**70], datatype="INT64"),
    v2(ROW, datatype="INT32"),
    json.dumps({"inputs": json.loads(v2(ROW))["inputs"], "outputs": [{"name": 5}]}).encode(),
    json.dumps(
        {
            "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": ROW}],
            "outputs": [{"name": "nope"}],
        }
    ).encode(),
    # Deep nesting and sheer size.
    b"[" * 100_000 + b"]" * 100_000,
    b'{"features": ' + b"[" * 5_000 + b"1" + b"]" * 5_000 + b"}",
    b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
    b'{"features": [' + b", ".join([b"[1, 2, 3, 4]"] * 5_000) + b"]}",
    b'{"features": [[1, 2, 3, 4]], "padding": "' + b"x" * (5 * 2**20) + b'"}',
]


@pytest.fixture(name="server", scope="module")
def _server(
    tmp_path_factory: pytest.TempPathFactory, demo_store_template: Path
) -> Iterator[ServerProcess]:
    env = {"PREDICTION_RELOAD_INTERVAL_S": "0", "PREDICTION_ACCESS_LOG": "false"}
    tmp_path = tmp_path_factory.mktemp("hostile")
    with serve_process(
        tmp_path, "--model-store", str(demo_store_template), "--default-model", "iris", env=env
    ) as server:
        yield server


@pytest.fixture(name="client", scope="module")
def _client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def assert_client_error(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    body = response.json()
    assert ["error"] == list(body)
    assert isinstance(body["error"], str)
    assert LEAKS.search(response.text) is None, response.text


def test_corpus_is_large_enough() -> None:
    """The hand-written corpus has at least 50 hostile bodies."""
    assert len(CORPUS) >= 50


@pytest.mark.parametrize("route", ROUTES)
def test_hostile_corpus_gets_only_client_errors(
    client: httpx.Client, route: str, figures: dict[str, str]
) -> None:
    """Every corpus body on every prediction route gets a 4xx JSON error without internals."""
    for body in CORPUS:
        assert_client_error(
            client.post(route, content=body, headers={"Content-Type": "application/json"})
        )
    after = client.post(route, json={"instances": [ROW]} if "v1" in route else {"features": [ROW]})
    if "v2" not in route:
        assert 200 == after.status_code
    figures["hostile input"] = f"{len(CORPUS)} bodies x {len(ROUTES)} routes, all 4xx"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=6)
        | st.dictionaries(
            st.sampled_from(["features", "instances", "inputs", "data", "shape", "datatype", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=JSON_VALUES, route=st.sampled_from(ROUTES))
def test_generated_json_never_5xx(client: httpx.Client, body: object, route: str) -> None:
    """Any JSON document on any prediction route gets a 2xx or a 4xx JSON error, never a 5xx."""
    response = client.post(route, json=body)

    if response.status_code >= 300:
        assert_client_error(response)


def test_still_correct_afterwards(client: httpx.Client) -> None:
    """After the hostile traffic the server answers a good request correctly."""
    response = client.post("/predict", json={"features": [ROW]})

    assert (200, {"prediction": [0]}) == (response.status_code, response.json())


# A table model (the loans demo): rows and tensors of any JSON scalars, nested arrays and names.
LOANS_FIELDS = (
    "purpose",
    "employment",
    "owns_home",
    "age",
    "income",
    "loan_amount",
    "open_accounts",
)
LOANS_ROUTES = ("/predict?model=loans", "/predict_proba?model=loans", "/v1/models/loans:predict")
TABLE_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10)
    | st.sampled_from(["car", "business", "salaried", "x" * 100_000])
    | st.lists(st.integers(), max_size=2)
)
TABLE_ROWS = st.lists(
    st.lists(TABLE_VALUES, min_size=6, max_size=8)
    | st.dictionaries(st.sampled_from([*LOANS_FIELDS, "x"]), TABLE_VALUES, max_size=8),
    min_size=1,
    max_size=4,
)
TABLE_TENSORS = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from([*LOANS_FIELDS, "input-0"]),
            "datatype": st.sampled_from(["BYTES", "BOOL", "INT32", "INT64", "FP32", "FP64"]),
            "shape": st.sampled_from([[1], [2], [2, 1], [1, 7]]),
            "data": st.lists(TABLE_VALUES, max_size=3),
        }
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(rows=TABLE_ROWS, route=st.sampled_from(LOANS_ROUTES))
def test_generated_table_rows_never_5xx(client: httpx.Client, rows: object, route: str) -> None:
    """Any rows of JSON values sent to a table model get a 2xx or a 4xx JSON error."""
    response = client.post(route, json={"instances": rows})

    if response.status_code >= 300:
        assert_client_error(response)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(inputs=TABLE_TENSORS)
def test_generated_table_tensors_never_5xx(client: httpx.Client, inputs: object) -> None:
    """Any V2 tensors of JSON values sent to a table model get a 2xx or a 4xx JSON error."""
    response = client.post("/v2/models/loans/infer", json={"inputs": inputs})

    if response.status_code >= 300:
        assert_client_error(response)
