"""The V2 tensor codec: request tensors to the model's matrix, outputs and metadata back."""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import pytest

from service.errors import InvalidInputError
from service.errors import TooManyRowsError
from service.store import Manifest
from service.store.features import Feature
from service.store.features import FeatureSchema
from service.v2codec import decode_request
from service.v2codec import encode_binary_output
from service.v2codec import encode_output
from service.v2codec import model_config
from service.v2codec import model_metadata
from service.v2codec import predict_datatype
from service.v2codec import split_binary_body

NAMES = ("a", "b", "c")


def manifest(**overrides: Any) -> Manifest:
    fields: dict[str, Any] = {
        "name": "m",
        "version": 3,
        "artifact": "model.joblib",
        "sha256": "0" * 64,
        "framework": "scikit-learn",
        "framework_version": "1.0",
        "python_version": "3.11.0",
        "created_at": "2026-01-01T00:00:00Z",
        "task": "classification",
        "n_features": 3,
        "feature_names": NAMES,
        "classes": (0, 1),
        "outputs": ("predict", "predict_proba"),
    }
    fields.update(overrides)
    return Manifest(**fields)


def tensor(data: object, shape: list[int], datatype: str = "FP64", name: str = "x") -> Any:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


def decode(inputs: list[Any], *, max_rows: int = 100, **body: Any) -> Any:
    return decode_request({"inputs": inputs, **body}, manifest(), max_rows=max_rows)


class TestDecodeRequest:
    def test_flat_matrix(self) -> None:
        """Flat data of an [N, n_features] tensor becomes that matrix, row-major."""
        decoded = decode([tensor([1, 2, 3, 4, 5, 6], [2, 3])])

        assert [[1, 2, 3], [4, 5, 6]] == decoded.matrix.tolist()

    def test_matrix_is_c_contiguous_float64(self) -> None:
        """The matrix is what the batcher stacks: C-contiguous float64."""
        matrix = decode([tensor([1, 2, 3], [1, 3], "INT32")]).matrix

        assert (np.float64, True) == (matrix.dtype, matrix.flags.c_contiguous)

    def test_nested_matrix(self) -> None:
        """Nested data that follows the shape equals the same data flat."""
        decoded = decode([tensor([[1, 2, 3], [4, 5, 6]], [2, 3])])

        assert [[1, 2, 3], [4, 5, 6]] == decoded.matrix.tolist()

    def test_columns_in_any_order(self) -> None:
        """Per-feature tensors are placed in the manifest's feature order."""
        inputs = [tensor([3, 6], [2], name="c"), tensor([1, 4], [2], name="a")]
        inputs.append(tensor([[2], [5]], [2, 1], name="b"))

        assert [[1, 2, 3], [4, 5, 6]] == decode(inputs).matrix.tolist()

    def test_fp32_values_rounded_to_float32(self) -> None:
        """An FP32 tensor's values are float32 values, as a float32 server would hold them."""
        decoded = decode([tensor([0.1, 0.2, 0.3], [1, 3], "FP32")])

        assert np.array([[0.1, 0.2, 0.3]], dtype=np.float32).tolist() == decoded.matrix.tolist()

    def test_defaults(self) -> None:
        """Without id and outputs, the request has no id and asks for predict."""
        decoded = decode([tensor([1, 2, 3], [1, 3])])

        assert (None, ("predict",)) == (decoded.id, decoded.outputs)

    def test_outputs_in_order_without_repeats(self) -> None:
        """Outputs come back in the order asked, each once."""
        outputs = [{"name": "predict_proba"}, {"name": "predict"}, {"name": "predict_proba"}]

        decoded = decode([tensor([1, 2, 3], [1, 3])], outputs=outputs, id="r1")

        assert ("r1", ("predict_proba", "predict")) == (decoded.id, decoded.outputs)

    def test_int64_bounds_are_exact(self) -> None:
        """INT64 accepts its extremes and refuses one past them."""
        decode([tensor([-(2**63), 2**63 - 1, 0], [1, 3], "INT64")])

        with pytest.raises(InvalidInputError, match="out of the INT64 range"):
            decode([tensor([2**63, 0, 0], [1, 3], "INT64")])

    def test_too_many_rows(self) -> None:
        """More rows than max_rows is TooManyRowsError (413), for columns too."""
        with pytest.raises(TooManyRowsError):
            decode([tensor([1] * 6, [2, 3])], max_rows=1)
        with pytest.raises(TooManyRowsError):
            decode([tensor([1, 1], [2], name=name) for name in NAMES], max_rows=1)

    @pytest.mark.parametrize(
        ("inputs", "message"),
        [
            ([tensor([1, 2], [1, 2])], r"must have shape \[N, 3\]"),
            ([tensor([1, 2, 3], [3], name="x")], r"must have shape \[N, 3\]"),
            ([tensor([1, 2, 3], [1, 3], name="")], 'needs a "name"'),
            ([tensor([1, 2, 3], [], name="x")], '"shape"'),
            ([tensor([1, 2, 3], [1, True], name="x")], '"shape"'),
            ([tensor({"a": 1}, [1, 3])], "data must be an array"),
            ([tensor([[1, 2, 3]], [3, 1])], "nested differently"),
            ([tensor([[1, 2], [3]], [2, 2])], "nested differently"),
            ([tensor([[[1, 2, 3]]], [1, 3])], "nested differently"),
            ([tensor([1, 2, None], [1, 3])], "value 2: null is not a number"),
            ([tensor([1, 2, 2**1100], [1, 3])], "too large to be a 64-bit float"),
            ([tensor([1, 1], [2], name=n) for n in ("a", "b", "a")], "given twice"),
            ([tensor([1, 1], [2, 1, 1], name=n) for n in NAMES], r"must have shape \[N\]"),
            (["x"], "must be an object"),
        ],
    )
    def test_invalid(self, inputs: list[Any], message: str) -> None:
        """Tensors that do not follow the protocol or fit the model are refused, saying why."""
        with pytest.raises(InvalidInputError, match=message):
            decode(inputs)

    def test_columns_need_feature_names(self) -> None:
        """Without feature names a model takes only the one matrix input."""
        unnamed = manifest(feature_names=None)
        inputs = [tensor([1], [1], name=name) for name in NAMES]

        with pytest.raises(InvalidInputError, match="no feature names"):
            decode_request({"inputs": inputs}, unnamed, max_rows=10)

    def test_output_the_model_lacks(self) -> None:
        """predict_proba of a model without it is an unknown output."""
        regressor = manifest(task="regression", classes=None, outputs=("predict",))
        body = {"inputs": [tensor([1, 2, 3], [1, 3])], "outputs": [{"name": "predict_proba"}]}

        with pytest.raises(InvalidInputError, match=r"model 'm' has: predict\.$"):
            decode_request(body, regressor, max_rows=10)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"inputs": [tensor([1, 2, 3], [1, 3])], "parameters": []}, '"parameters"'),
            ({"inputs": [tensor([1, 2, 3], [1, 3])], "outputs": [{}]}, '"name" string'),
            ({"inputs": [tensor([1, 2, 3], [1, 3])], "outputs": ["predict"]}, '"name" string'),
            ({"inputs": {}}, '"inputs" must be a non-empty array'),
        ],
    )
    def test_invalid_fields(self, body: dict[str, Any], message: str) -> None:
        """Ill-typed top-level fields are refused, naming the field."""
        with pytest.raises(InvalidInputError, match=message):
            decode_request(body, manifest(), max_rows=10)


class TestBinaryData:
    def test_split_and_decode(self) -> None:
        """Raw little-endian bytes after the JSON header are read by each input's datatype."""
        raw = np.array([[1, 2, 3]], dtype="<i4").tobytes()
        header = {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 3],
                    "datatype": "INT32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }

        decoded = decode_request(header, manifest(), max_rows=10, binary=raw)

        assert [[1, 2, 3]] == decoded.matrix.tolist()

    def test_columns_read_in_input_order(self) -> None:
        """Each binary input takes its bytes in the order the inputs are listed."""
        columns = {"b": [2.0, 5.0], "a": [1.0, 4.0], "c": [3.0, 6.0]}
        raw = b"".join(np.array(values, dtype="<f8").tobytes() for values in columns.values())
        inputs = [
            {"name": n, "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}
            for n in columns
        ]

        decoded = decode_request({"inputs": inputs}, manifest(), max_rows=10, binary=raw)

        assert [[1, 2, 3], [4, 5, 6]] == decoded.matrix.tolist()

    def test_size_must_match_shape(self) -> None:
        """binary_data_size must be what the shape and datatype need."""
        inputs = [
            {
                "name": "x",
                "shape": [1, 3],
                "datatype": "FP64",
                "parameters": {"binary_data_size": 8},
            }
        ]

        with pytest.raises(InvalidInputError, match="need 24 bytes"):
            decode_request({"inputs": inputs}, manifest(), max_rows=10, binary=b"\0" * 8)

    def test_split_binary_body(self) -> None:
        """The header length splits the body into JSON and tensor bytes."""
        assert (b'{"a":1}', b"\x01\x02") == split_binary_body(b'{"a":1}\x01\x02', "7")


class TestBinaryOutputs:
    def test_none_by_default(self) -> None:
        """Without binary parameters every output is answered as JSON."""
        decoded = decode([tensor([1, 2, 3], [1, 3])], outputs=[{"name": "predict"}])

        assert frozenset() == decoded.binary_outputs

    def test_binary_data_output_covers_the_default_output(self) -> None:
        """binary_data_output with no outputs listed makes predict binary (tritonclient's way)."""
        decoded = decode([tensor([1, 2, 3], [1, 3])], parameters={"binary_data_output": True})

        assert (("predict",), frozenset({"predict"})) == (
            decoded.outputs,
            decoded.binary_outputs,
        )

    def test_per_output_binary_data_wins(self) -> None:
        """An output's binary_data overrides the request's binary_data_output."""
        outputs = [
            {"name": "predict", "parameters": {"binary_data": False}},
            {"name": "predict_proba"},
        ]

        decoded = decode(
            [tensor([1, 2, 3], [1, 3])],
            outputs=outputs,
            parameters={"binary_data_output": True},
        )

        assert frozenset({"predict_proba"}) == decoded.binary_outputs

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"parameters": {"binary_data_output": 1}}, '"binary_data_output" must be true'),
            (
                {"outputs": [{"name": "predict", "parameters": {"binary_data": "yes"}}]},
                "Output 'predict' parameter \"binary_data\" must be true or false.",
            ),
        ],
    )
    def test_flags_must_be_booleans(self, body: dict[str, Any], message: str) -> None:
        """The binary flags are booleans; anything else is 400 naming the flag."""
        with pytest.raises(InvalidInputError, match=re.escape(message)):
            decode([tensor([1, 2, 3], [1, 3])], **body)

    def test_encode_numbers_little_endian(self) -> None:
        """Binary FP64 data is the values' little-endian bytes, sized in binary_data_size."""
        proba = np.array([[0.25, 0.75], [1.0, 0.0]])

        header, raw = encode_binary_output("predict_proba", proba, manifest())

        assert (
            {
                "name": "predict_proba",
                "datatype": "FP64",
                "shape": [2, 2],
                "parameters": {"binary_data_size": 32},
            },
            proba.astype("<f8").tobytes(),
        ) == (header, raw)

    def test_encode_bool_one_byte_each(self) -> None:
        """BOOL elements are one byte each, 1 for true."""
        header, raw = encode_binary_output(
            "predict", np.array([True, False]), manifest(classes=(False, True))
        )

        assert ("BOOL", b"\x01\x00") == (header["datatype"], raw)

    def test_encode_bytes_length_prefixed(self) -> None:
        """BYTES elements are each a 4-byte little-endian length, then the UTF-8 text."""
        header, raw = encode_binary_output(
            "predict", np.array(["cat", "é"]), manifest(classes=("cat", "é"))
        )

        assert ("BYTES", b"\x03\x00\x00\x00cat\x02\x00\x00\x00\xc3\xa9") == (
            header["datatype"],
            raw,
        )


class TestOutputs:
    @pytest.mark.parametrize(
        ("classes", "datatype"),
        [
            ((0, 1, 2), "INT64"),
            ((0.5, 1.5), "FP64"),
            ((1, 2.5), "FP64"),
            (("cat", "dog"), "BYTES"),
            ((False, True), "BOOL"),
        ],
    )
    def test_predict_datatype_follows_classes(
        self, classes: tuple[Any, ...], datatype: str
    ) -> None:
        """predict's datatype is that of the class labels."""
        assert datatype == predict_datatype(manifest(classes=classes))

    def test_regressor_predict_is_fp64(self) -> None:
        """A regressor's predict is FP64."""
        assert "FP64" == predict_datatype(manifest(task="regression", classes=None))

    def test_encode_predict(self) -> None:
        """predict is [N] data in the labels' datatype."""
        output = encode_output("predict", np.array([1, 0, 1]), manifest())

        assert ("predict", "INT64", [3], [1, 0, 1]) == (
            output["name"],
            output["datatype"],
            output["shape"],
            np.asarray(output["data"]).tolist(),
        )

    def test_encode_string_labels(self) -> None:
        """String labels are BYTES data of plain strings."""
        output = encode_output(
            "predict", np.array(["cat", "dog"]), manifest(classes=("cat", "dog"))
        )

        assert ("BYTES", ["cat", "dog"]) == (output["datatype"], output["data"])

    def test_encode_proba_row_major(self) -> None:
        """predict_proba is FP64 of shape [N, n_classes], data flat in row-major order."""
        output = encode_output("predict_proba", np.array([[0.25, 0.75], [1.0, 0.0]]), manifest())

        assert ("FP64", [2, 2], [0.25, 0.75, 1.0, 0.0]) == (
            output["datatype"],
            output["shape"],
            np.asarray(output["data"]).tolist(),
        )

    def test_model_metadata(self) -> None:
        """Metadata lists the versions ascending, the matrix input, both outputs and the engine."""
        metadata = model_metadata(manifest(), [3, 2], "trees")

        assert {
            "name": "m",
            "versions": ["2", "3"],
            "platform": "scikit-learn",
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, 3]}],
            "outputs": [
                {"name": "predict", "datatype": "INT64", "shape": [-1]},
                {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
            ],
            "parameters": {
                "version": "3",
                "task": "classification",
                "feature_names": ["a", "b", "c"],
                "classes": [0, 1],
                "engine": "trees",
            },
        } == metadata


class TestModelConfig:
    def test_triton_shape(self) -> None:
        """The config batches along the first dimension: max_batch_size is the request row
        limit, and dims are the metadata shapes without the batch dimension."""
        config = model_config(
            manifest(),
            max_request_rows=1024,
            max_batch_rows=256,
            max_wait_ms=1.5,
            instances=1,
            engine="trees",
        )

        assert (
            "m",
            "scikit-learn",
            1024,
            [("input-0", "TYPE_FP64", [3], None)],
            [
                ("predict", "TYPE_INT64", [1], {"shape": []}),
                ("predict_proba", "TYPE_FP64", [2], None),
            ],
            1500,
            {
                "task": {"string_value": "classification"},
                "max_batch_rows": {"string_value": "256"},
                "engine": {"string_value": "trees"},
            },
        ) == (
            config["name"],
            config["platform"],
            config["max_batch_size"],
            [
                (t["name"], t["data_type"], t["dims"], t.get("reshape"))
                for t in config["input"]  # type: ignore[attr-defined]
            ],
            [
                (t["name"], t["data_type"], t["dims"], t.get("reshape"))
                for t in config["output"]  # type: ignore[attr-defined]
            ],
            config["dynamic_batching"]["max_queue_delay_microseconds"],  # type: ignore[index]
            config["parameters"],
        )

    def test_string_labels_are_type_string(self) -> None:
        """BYTES tensors are TYPE_STRING in a config, as Triton names them."""
        config = model_config(
            manifest(classes=("cat", "dog")),
            max_request_rows=8,
            max_batch_rows=8,
            max_wait_ms=0,
            instances=1,
        )

        assert "TYPE_STRING" == config["output"][0]["data_type"]  # type: ignore[index]


TABLE = FeatureSchema(
    (
        Feature("city", "string", nullable=True),
        Feature("garden", "bool"),
        Feature("rooms", "int"),
        Feature("area", "float", nullable=True),
    )
)


def table_manifest() -> Manifest:
    return manifest(n_features=4, feature_names=TABLE.names, features=TABLE)


def table_inputs(**data: list[Any]) -> list[dict[str, Any]]:
    columns: dict[str, list[Any]] = {
        "city": ["lyon", None],
        "garden": [True, False],
        "rooms": [3, 4],
        "area": [1.5, 2],
    }
    columns.update(data)
    types = {"city": "BYTES", "garden": "BOOL", "rooms": "INT64", "area": "FP64"}
    return [tensor(values, [len(values)], types[name], name) for name, values in columns.items()]


def decode_table(inputs: list[Any], binary: bytes = b"") -> Any:
    return decode_request({"inputs": inputs}, table_manifest(), max_rows=100, binary=binary)


def length_prefixed(*strings: str) -> bytes:
    return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in strings)


class TestDecodeTable:
    def test_one_tensor_per_feature_in_any_order(self) -> None:
        """A table model's inputs, one per feature in any order, become its table's columns."""
        decoded = decode_table(list(reversed(table_inputs())))

        assert decoded.matrix.tolist() == [["lyon", True, 3, 1.5], [None, False, 4, 2]]

    def test_column_shape_n_by_1(self) -> None:
        """A feature's input may have shape [N, 1], with nested data."""
        inputs = table_inputs()
        inputs[2] = tensor([[3], [4]], [2, 1], "INT64", "rooms")

        assert decode_table(inputs).matrix[:, 2].tolist() == [3, 4]

    def test_fp32_values_are_rounded_to_float32(self) -> None:
        """An FP32 input holds float32 values, as for numeric models."""
        inputs = table_inputs()
        inputs[3] = tensor([0.1, None], [2], "FP32", "area")

        assert decode_table(inputs).matrix[:, 3].tolist() == [float(np.float32(0.1)), None]

    def test_binary_bytes_bool_and_numbers(self) -> None:
        """Binary BYTES (length-prefixed UTF-8), BOOL (a byte each) and FP64 with NaN missing."""
        strings = length_prefixed("lyon", "é")
        flags = bytes([1, 0])
        areas = np.array([1.5, np.nan]).tobytes()

        def binary(name: str, datatype: str, size: int) -> dict[str, Any]:
            return {
                "name": name,
                "shape": [2],
                "datatype": datatype,
                "parameters": {"binary_data_size": size},
            }

        inputs = [
            binary("city", "BYTES", len(strings)),
            binary("garden", "BOOL", 2),
            tensor([3, 4], [2], "INT64", "rooms"),
            binary("area", "FP64", 16),
        ]

        decoded = decode_table(inputs, strings + flags + areas)

        assert decoded.matrix.tolist() == [["lyon", True, 3, 1.5], ["é", False, 4, None]]

    @pytest.mark.parametrize(
        ("inputs", "binary", "message"),
        [
            (
                table_inputs(rooms=[3, 4.5]),
                b"",
                "Input 'rooms' (INT64) value 1: 4.5 is not a INT64 integer.",
            ),
            (
                [*table_inputs()[:3], tensor([1.5, 2], [2], "BYTES", "area")],
                b"",
                "Input 'area' has datatype 'BYTES'; feature 'area' (float) takes FP64, FP32, "
                "INT64, INT32.",
            ),
            (
                [*table_inputs(), tensor([1], [1], "INT64", "pool")],
                b"",
                "Unknown input 'pool'; send one [N] input per feature: city, garden, rooms, area.",
            ),
            (table_inputs()[:3], b"", "Input 'area' is missing; every feature needs one."),
            (
                table_inputs(garden=[1, 0]),
                b"",
                "Input 'garden' value 0: 1 is not true or false.",
            ),
            (
                table_inputs(city=[["lyon"], "paris"]),
                b"",
                "Input 'city' value 0: an array is not a string.",
            ),
            (
                [
                    {
                        "name": "city",
                        "shape": [2],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": 9},
                    },
                    *table_inputs()[1:],
                ],
                length_prefixed("lyon") + b"\xff",
                "Input 'city' (BYTES) binary data does not hold 2 length-prefixed values.",
            ),
            (
                [
                    {
                        "name": "city",
                        "shape": [1],
                        "datatype": "BYTES",
                        "parameters": {"binary_data_size": 5},
                    },
                    *table_inputs(garden=[True], rooms=[1], area=[1.0])[1:],
                ],
                struct.pack("<I", 1) + b"\xff",
                "Input 'city' (BYTES) value 0 is not UTF-8 text.",
            ),
            (
                [
                    {
                        "name": "garden",
                        "shape": [2],
                        "datatype": "BOOL",
                        "parameters": {"binary_data_size": 2},
                    },
                    *table_inputs()[:1],
                    *table_inputs()[2:],
                ],
                bytes([1, 7]),
                "Input 'garden' (BOOL) has a byte that is not 0 or 1.",
            ),
        ],
    )
    def test_bad_table_inputs_are_named(
        self, inputs: list[Any], binary: bytes, message: str
    ) -> None:
        """A table model's input that does not fit its feature fails naming the input."""
        with pytest.raises(InvalidInputError) as raised:
            decode_table(inputs, binary)

        assert str(raised.value) == message


def test_table_model_metadata_lists_each_feature() -> None:
    """A table model's metadata lists one [-1] input per feature, with its datatype."""
    inputs = model_metadata(table_manifest(), [3])["inputs"]

    assert inputs == [
        {"name": "city", "datatype": "BYTES", "shape": [-1]},
        {"name": "garden", "datatype": "BOOL", "shape": [-1]},
        {"name": "rooms", "datatype": "INT64", "shape": [-1]},
        {"name": "area", "datatype": "FP64", "shape": [-1]},
    ]


def test_table_model_config_lists_each_feature() -> None:
    """A table model's config lists each feature with Triton's type names."""
    config = model_config(
        table_manifest(), max_request_rows=8, max_batch_rows=8, max_wait_ms=1, instances=1
    )

    assert [(each["name"], each["data_type"], each["dims"]) for each in config["input"]] == [  # type: ignore[attr-defined]
        ("city", "TYPE_STRING", [1]),
        ("garden", "TYPE_BOOL", [1]),
        ("rooms", "TYPE_INT64", [1]),
        ("area", "TYPE_FP64", [1]),
    ]
