"""Open Inference Protocol (V2) tensors: request tensors to a model's input, outputs back.

Framework-free, so the HTTP layer stays a thin parse-call-serialize shell. What is accepted
(https://github.com/kserve/open-inference-protocol, REST):

- one input of shape ``[N, n_features]``, any name, or one ``[N]`` (or ``[N, 1]``) input per
  feature named by the manifest's ``feature_names``, in any order;
- datatypes ``FP32``, ``FP64``, ``INT32``, ``INT64``; ``data`` flat (row-major) or nested as the
  shape says, or raw little-endian bytes after the JSON header (Triton's binary tensor
  extension, which ``tritonclient`` uses by default);
- for a table model (a manifest with ``features``): one ``[N]`` (or ``[N, 1]``) input per
  feature, named by the feature, with its type's datatype: ``BYTES`` for strings (JSON strings,
  or in binary each element's 4-byte little-endian length then its UTF-8 bytes), ``BOOL``,
  ``INT32``/``INT64`` for ints, those and ``FP32``/``FP64`` for floats; JSON ``null`` (or a
  binary NaN float) is a missing value where the feature is nullable;
- outputs ``predict`` (the default) and ``predict_proba``, asked for by name in ``outputs``,
  as JSON ``data`` or, when the request asks (``parameters.binary_data_output``, or per output
  ``parameters.binary_data``, which wins), as raw little-endian bytes after the JSON header.

:func:`model_config` describes a model in Triton's model-configuration JSON
(https://github.com/triton-inference-server/common/blob/main/protobuf/model_config.proto), as
``tritonclient``'s ``get_model_config`` and ``perf_analyzer`` read it.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import Final

import numpy as np
from numpy.typing import NDArray

from service.errors import InvalidInputError
from service.errors import TooManyRowsError
from service.inputs import describe_value
from service.store import OUTPUTS
from service.store import Manifest
from service.store import Output
from service.store.features import Feature
from service.store.features import FeatureSchema
from service.store.features import FeatureType
from service.store.manifest import FRAMEWORK
from service.tables import table_from_columns

__all__ = [
    "FEATURE_DATATYPES",
    "INPUT_DATATYPES",
    "MATRIX_INPUT",
    "InferenceRequest",
    "decode_request",
    "encode_binary_output",
    "encode_output",
    "model_config",
    "model_metadata",
    "predict_datatype",
    "split_binary_body",
]

MATRIX_INPUT: Final = "input-0"
"""The name model metadata gives the ``[N, n_features]`` input (any name is accepted)."""

# The little-endian numpy dtype of each accepted input datatype (binary data is little-endian).
INPUT_DATATYPES: Final[dict[str, np.dtype[Any]]] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
}
_INT_BOUNDS: Final = {"INT32": (-(2**31), 2**31 - 1), "INT64": (-(2**63), 2**63 - 1)}
# bool is a subclass of int, so type() and not isinstance() keeps true/false out.
_FLOAT_TYPES: Final = frozenset({int, float})
_INT_TYPES: Final = frozenset({int})
# Numeric outputs are sent as these numpy dtypes (orjson serializes them without a copy).
_OUTPUT_DTYPES: Final = {"BOOL": np.bool_, "INT64": np.int64, "FP64": np.float64}


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """A decoded inference request: what to compute, on which rows."""

    id: str | None
    """The request's ``id``, echoed in the response."""
    matrix: NDArray[Any]
    """``(N, n_features)`` rows in the manifest's feature order: C-contiguous float64, or a
    table model's object table (``service.tables``)."""
    outputs: tuple[Output, ...]
    """The outputs asked for, in the order asked, without repeats."""
    binary_outputs: frozenset[Output] = frozenset()
    """The outputs to answer as binary data after the JSON header (binary tensor extension)."""


@dataclass(frozen=True, slots=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    values: NDArray[np.float64]
    """The tensor's values, flat (row-major), as finite-or-not float64."""


def split_binary_body(body: bytes, header_length: str) -> tuple[bytes, bytes]:
    """Split a binary-extension body into its JSON header and the raw tensor bytes after it.

    Args:
        body: the whole request body.
        header_length: the ``Inference-Header-Content-Length`` header: the JSON part's bytes.

    Raises:
        InvalidInputError: the header is not an integer within the body's length.
    """
    if not header_length.isascii() or not header_length.isdigit():
        raise InvalidInputError(
            f"Inference-Header-Content-Length must be a byte count, got {header_length[:20]!r}."
        )
    length = int(header_length)
    if length > len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length is {length} but the body has {len(body)} bytes."
        )
    return body[:length], body[length:]


def decode_request(
    body: object, manifest: Manifest, *, max_rows: int, binary: bytes = b""
) -> InferenceRequest:
    """Validate an inference request and build the model's input matrix from its tensors.

    Args:
        body: the decoded JSON request object.
        manifest: the version that will answer (feature count and names, outputs).
        max_rows: the most rows one request may carry.
        binary: raw tensor bytes that followed the JSON header (binary tensor extension).

    Raises:
        InvalidInputError: the request does not follow the protocol or does not fit the model;
            the message names the input, output or field.
        TooManyRowsError: more than ``max_rows`` rows.
    """
    if not isinstance(body, dict):
        raise InvalidInputError('The body must be a JSON object with an "inputs" array.')
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInputError('"id" must be a string.')
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInputError('"parameters" must be an object.')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError('"inputs" must be a non-empty array of tensors.')
    matrix: NDArray[Any]
    if manifest.features is None:
        tensors: list[_Tensor] = []
        offset = 0
        for index, item in enumerate(inputs):
            tensor, offset = _decode_tensor(index, item, binary, offset)
            tensors.append(tensor)
        _check_binary_used(binary, offset)
        matrix = _matrix(tensors, manifest, max_rows)
    else:
        matrix = _table(inputs, manifest.features, binary, max_rows)
    binary_default = parameters.get("binary_data_output", False) if parameters else False
    if type(binary_default) is not bool:
        raise InvalidInputError('Parameter "binary_data_output" must be true or false.')
    outputs, binary_outputs = _requested_outputs(body.get("outputs"), manifest, binary_default)
    return InferenceRequest(request_id, matrix, outputs, binary_outputs)


def _check_binary_used(binary: bytes, offset: int) -> None:
    if offset != len(binary):
        raise InvalidInputError(
            f"The body has {len(binary) - offset} bytes of binary data that no input claims."
        )


def _decode_tensor(index: int, item: object, binary: bytes, offset: int) -> tuple[_Tensor, int]:
    if not isinstance(item, dict):
        raise InvalidInputError(f"Input {index} must be an object with name, shape, datatype.")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f'Input {index} needs a "name" string.')
    datatype = item.get("datatype")
    dtype = INPUT_DATATYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None or not isinstance(datatype, str):
        shown = describe_value(datatype)
        raise InvalidInputError(
            f"Input '{name}' has datatype {shown}; supported: {', '.join(INPUT_DATATYPES)}."
        )
    shape = _shape(name, item.get("shape"))
    size = math.prod(shape)
    binary_size = _binary_size(item)
    if binary_size is not None:
        values, offset = _from_binary(name, dtype, size, binary_size, binary, offset)
    else:
        values = _from_json(name, datatype, shape, size, _json_data(name, item))
    if datatype == "FP32":
        # An FP32 tensor holds float32 values: round as a float32 server would have stored them.
        with np.errstate(over="ignore"):
            values = values.astype(np.float32).astype(np.float64)
    return _Tensor(name, shape, values), offset


def _binary_size(item: dict[str, Any]) -> object:
    """The tensor's ``binary_data_size`` parameter: set when its data follows the JSON header."""
    parameters = item.get("parameters")
    return parameters.get("binary_data_size") if isinstance(parameters, dict) else None


def _json_data(name: str, item: dict[str, Any]) -> object:
    if "data" not in item:
        raise InvalidInputError(f"Input '{name}' has no \"data\".")
    return item["data"]


def _shape(name: str, raw: object) -> tuple[int, ...]:
    if (
        not isinstance(raw, list)
        or not raw
        or not all(type(dim) is int and dim >= 0 for dim in raw)
    ):
        raise InvalidInputError(
            f"Input '{name}' needs a \"shape\": a non-empty array of non-negative integers."
        )
    return tuple(raw)


def _from_binary(
    name: str, dtype: np.dtype[Any], size: int, binary_size: object, binary: bytes, offset: int
) -> tuple[NDArray[np.float64], int]:
    expected = size * dtype.itemsize
    if type(binary_size) is not int or binary_size != expected:
        raise InvalidInputError(
            f"Input '{name}' declares binary_data_size {describe_value(binary_size)}; its shape "
            f"and datatype need {expected} bytes."
        )
    end = offset + binary_size
    if end > len(binary):
        raise InvalidInputError(f"Input '{name}' needs {binary_size} bytes of binary data.")
    raw = np.frombuffer(binary, dtype=dtype, count=size, offset=offset)
    return raw.astype(np.float64), end


def _from_json(
    name: str, datatype: str, shape: tuple[int, ...], size: int, data: object
) -> NDArray[np.float64]:
    if not isinstance(data, list):
        raise InvalidInputError(f"Input '{name}' data must be an array.")
    flat = _flatten(name, data, shape) if data and type(data[0]) is list else data
    if len(flat) != size:
        raise InvalidInputError(
            f"Input '{name}' has shape {list(shape)} ({size} values) but {len(flat)} values "
            "of data."
        )
    allowed = _INT_TYPES if datatype in _INT_BOUNDS else _FLOAT_TYPES
    # One C-level pass over the types; only a bad tensor pays for the slow search.
    if not allowed.issuperset(map(type, flat)):
        position, value = next((i, v) for i, v in enumerate(flat) if type(v) not in allowed)
        kind = "an integer" if datatype in _INT_BOUNDS else "a number"
        raise InvalidInputError(
            f"Input '{name}' ({datatype}) value {position}: {describe_value(value)} is not {kind}."
        )
    bounds = _INT_BOUNDS.get(datatype)
    if bounds is not None and flat and (min(flat) < bounds[0] or max(flat) > bounds[1]):
        raise InvalidInputError(f"Input '{name}' has a value out of the {datatype} range.")
    try:
        return np.array(flat, dtype=np.float64)
    except OverflowError:
        raise InvalidInputError(
            f"Input '{name}' has a value too large to be a 64-bit float."
        ) from None


def _flatten(name: str, data: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Nested data, checked level by level against ``shape``, as one row-major list."""
    level = data
    if len(level) != shape[0]:
        raise InvalidInputError(
            f"Input '{name}' data is nested differently from its shape {list(shape)}."
        )
    for dim in shape[1:]:
        if not all(type(item) is list and len(item) == dim for item in level):
            raise InvalidInputError(
                f"Input '{name}' data is nested differently from its shape {list(shape)}."
            )
        level = [value for item in level for value in item]
    return level


def _matrix(tensors: Sequence[_Tensor], manifest: Manifest, max_rows: int) -> NDArray[np.float64]:
    n_features = manifest.n_features
    names = manifest.feature_names
    first = tensors[0]
    if len(tensors) == 1 and (len(first.shape) == 2 or names is None or first.name not in names):
        if len(first.shape) != 2 or first.shape[1] != n_features:
            raise InvalidInputError(
                f"Input '{first.name}' must have shape [N, {n_features}] (N rows of "
                f"{n_features} features), got {list(first.shape)}."
            )
        _check_rows(first.shape[0], max_rows)
        matrix = first.values.reshape(first.shape)
    else:
        matrix = _matrix_from_columns(tensors, n_features, names, max_rows)
    if not np.isfinite(matrix).all():
        row, column = (int(i) for i in np.argwhere(~np.isfinite(matrix))[0])
        feature = f"'{names[column]}'" if names is not None else str(column)
        raise InvalidInputError(f"Row {row}, feature {feature}: values must be finite numbers.")
    return matrix


def _matrix_from_columns(
    tensors: Sequence[_Tensor], n_features: int, names: Sequence[str] | None, max_rows: int
) -> NDArray[np.float64]:
    if names is None:
        raise InvalidInputError(
            f"Send one input of shape [N, {n_features}]; this model has no feature names, so "
            "it takes no per-feature inputs."
        )
    known = frozenset(names)
    columns: dict[str, _Tensor] = {}
    for tensor in tensors:
        if tensor.name not in known:
            raise InvalidInputError(
                f"Unknown input '{tensor.name}'; send one [N, {n_features}] input or one [N] "
                f"input per feature: {', '.join(names)}."
            )
        if tensor.name in columns:
            raise InvalidInputError(f"Input '{tensor.name}' is given twice.")
        shape = tensor.shape
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise InvalidInputError(
                f"Input '{tensor.name}' is one feature and must have shape [N], got {list(shape)}."
            )
        columns[tensor.name] = tensor
    missing = [name for name in names if name not in columns]
    if missing:
        raise InvalidInputError(f"Input '{missing[0]}' is missing; every feature needs one.")
    lengths = {tensor.shape[0] for tensor in tensors}
    if len(lengths) > 1:
        shown = ", ".join(f"'{t.name}' has {t.shape[0]}" for t in tensors)
        raise InvalidInputError(f"Every per-feature input must have the same N; {shown}.")
    _check_rows(tensors[0].shape[0], max_rows)
    return np.column_stack([columns[name].values for name in names])


def _check_rows(n_rows: int, max_rows: int) -> None:
    if n_rows == 0:
        raise InvalidInputError("The request has no rows.")
    if n_rows > max_rows:
        raise TooManyRowsError(n_rows, max_rows)


# A table model's feature types: the datatype metadata gives each, and those accepted.
FEATURE_DATATYPES: Final[dict[FeatureType, str]] = {
    "float": "FP64",
    "int": "INT64",
    "bool": "BOOL",
    "string": "BYTES",
}
_ACCEPTED_DATATYPES: Final[dict[FeatureType, tuple[str, ...]]] = {
    "float": ("FP64", "FP32", "INT64", "INT32"),
    "int": ("INT64", "INT32"),
    "bool": ("BOOL",),
    "string": ("BYTES",),
}
_LENGTH_PREFIX: Final = struct.Struct("<I")


def _table(
    inputs: list[Any], schema: FeatureSchema, binary: bytes, max_rows: int
) -> NDArray[np.object_]:
    """A table model's input: one tensor per feature, checked by ``service.tables``."""
    features = {feature.name: feature for feature in schema.features}
    columns: dict[str, list[Any]] = {}
    offset = 0
    for index, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise InvalidInputError(f"Input {index} must be an object with name, shape, datatype.")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f'Input {index} needs a "name" string.')
        feature = features.get(name)
        if feature is None:
            raise InvalidInputError(
                f"Unknown input {describe_value(name)}; send one [N] input per feature: "
                f"{', '.join(schema.names)}."
            )
        if name in columns:
            raise InvalidInputError(f"Input '{name}' is given twice.")
        columns[name], offset = _column(feature, item, binary, offset)
    _check_binary_used(binary, offset)
    return table_from_columns(columns, schema, max_rows=max_rows)


def _column(
    feature: Feature, item: dict[str, Any], binary: bytes, offset: int
) -> tuple[list[Any], int]:
    """One feature's values as decoded JSON would hold them (``None`` for missing)."""
    name = feature.name
    datatype = item.get("datatype")
    accepted = _ACCEPTED_DATATYPES[feature.type]
    if datatype not in accepted or not isinstance(datatype, str):
        raise InvalidInputError(
            f"Input '{name}' has datatype {describe_value(datatype)}; feature '{name}' "
            f"({feature.type}) takes {', '.join(accepted)}."
        )
    shape = _shape(name, item.get("shape"))
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise InvalidInputError(
            f"Input '{name}' is one feature and must have shape [N], got {list(shape)}."
        )
    size = shape[0]
    binary_size = _binary_size(item)
    if binary_size is not None:
        values, offset = _column_from_binary(feature, datatype, size, binary_size, binary, offset)
    else:
        values = _column_from_json(name, datatype, shape, _json_data(name, item))
    if datatype == "FP32":
        # An FP32 tensor holds float32 values: round as a float32 server would have stored them.
        with np.errstate(over="ignore"):
            values = [float(np.float32(v)) if type(v) is float else v for v in values]
    return values, offset


def _column_from_json(name: str, datatype: str, shape: tuple[int, ...], data: object) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidInputError(f"Input '{name}' data must be an array.")
    values = _flatten(name, data, shape) if len(shape) == 2 else data
    if len(values) != shape[0]:
        raise InvalidInputError(
            f"Input '{name}' has shape {list(shape)} ({shape[0]} values) but {len(values)} "
            "values of data."
        )
    bounds = _INT_BOUNDS.get(datatype)
    if bounds is not None:
        # An INT tensor holds integers whatever its feature: 1.5 is no INT64 value.
        for position, value in enumerate(values):
            if value is not None and (
                type(value) is not int or not bounds[0] <= value <= bounds[1]
            ):
                raise InvalidInputError(
                    f"Input '{name}' ({datatype}) value {position}: {describe_value(value)} is "
                    f"not a {datatype} integer."
                )
    return values


def _column_from_binary(
    feature: Feature, datatype: str, size: int, binary_size: object, binary: bytes, offset: int
) -> tuple[list[Any], int]:
    name = feature.name
    if type(binary_size) is not int or binary_size < 0 or offset + binary_size > len(binary):
        raise InvalidInputError(
            f"Input '{name}' declares binary_data_size {describe_value(binary_size)}; the body "
            f"has {len(binary) - offset} bytes of binary data left."
        )
    end = offset + binary_size
    raw = binary[offset:end]
    if datatype == "BYTES":
        return _strings(name, size, raw), end
    if datatype == "BOOL":
        if len(raw) != size:
            raise InvalidInputError(f"Input '{name}' (BOOL) needs {size} bytes, one per value.")
        flags = np.frombuffer(raw, dtype=np.uint8)
        if (flags > 1).any():
            raise InvalidInputError(f"Input '{name}' (BOOL) has a byte that is not 0 or 1.")
        return flags.astype(np.bool_).tolist(), end
    dtype = INPUT_DATATYPES[datatype]
    if len(raw) != size * dtype.itemsize:
        raise InvalidInputError(
            f"Input '{name}' declares binary_data_size {binary_size}; its shape and datatype "
            f"need {size * dtype.itemsize} bytes."
        )
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    if feature.nullable and datatype in ("FP32", "FP64"):
        # Binary data has no null: a NaN float is the missing value, as in a DataFrame.
        values = [None if v != v else v for v in values]
    return values, end


def _strings(name: str, size: int, raw: bytes) -> list[str]:
    """BYTES elements: each a 4-byte little-endian length, then that many UTF-8 bytes."""
    strings: list[str] = []
    position = 0
    while position < len(raw):
        if len(strings) == size or position + 4 > len(raw):
            break
        (length,) = _LENGTH_PREFIX.unpack_from(raw, position)
        start = position + 4
        if start + length > len(raw):
            break
        try:
            strings.append(raw[start : start + length].decode())
        except UnicodeDecodeError:
            raise InvalidInputError(
                f"Input '{name}' (BYTES) value {len(strings)} is not UTF-8 text."
            ) from None
        position = start + length
    if len(strings) != size or position != len(raw):
        raise InvalidInputError(
            f"Input '{name}' (BYTES) binary data does not hold {size} length-prefixed values."
        )
    return strings


_NO_BINARY: Final[frozenset[Output]] = frozenset()
_PREDICT: Final[tuple[Output, ...]] = ("predict",)


def _requested_outputs(
    raw: object, manifest: Manifest, binary_default: bool
) -> tuple[tuple[Output, ...], frozenset[Output]]:
    if raw is None or raw == []:
        return _PREDICT, frozenset(_PREDICT) if binary_default else _NO_BINARY
    if not isinstance(raw, list):
        raise InvalidInputError('"outputs" must be an array of {"name": ...} objects.')
    asked: list[Output] = []
    binary: set[Output] = set()
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(name := item.get("name"), str):
            raise InvalidInputError(f'Output {index} must be an object with a "name" string.')
        output = next((o for o in OUTPUTS if o == name and o in manifest.outputs), None)
        if output is None:
            raise InvalidInputError(
                f"Unknown output {describe_value(name)}; model '{manifest.name}' has: "
                f"{', '.join(manifest.outputs)}."
            )
        parameters = item.get("parameters")
        wanted = parameters.get("binary_data") if isinstance(parameters, dict) else None
        if wanted is None:
            wanted = binary_default
        elif type(wanted) is not bool:
            raise InvalidInputError(
                f"Output '{output}' parameter \"binary_data\" must be true or false."
            )
        if output not in asked:
            asked.append(output)
            if wanted:
                binary.add(output)
    return tuple(asked), frozenset(binary) if binary else _NO_BINARY


def predict_datatype(manifest: Manifest) -> str:
    """The ``predict`` output's datatype: that of the class labels; FP64 for a regressor."""
    classes = manifest.classes
    if classes is None:
        return "FP64"
    if all(isinstance(label, bool) for label in classes):
        return "BOOL"
    if all(isinstance(label, int) and not isinstance(label, bool) for label in classes):
        return "INT64"
    if all(isinstance(label, int | float) and not isinstance(label, bool) for label in classes):
        return "FP64"
    return "BYTES"


def _output_array(
    output: Output, result: NDArray[Any], manifest: Manifest
) -> tuple[str, NDArray[Any]]:
    """An output's datatype and its values as the numpy array that datatype sends."""
    if output == "predict_proba":
        datatype = "FP64"
        array = np.ascontiguousarray(result, dtype=np.float64)
    else:
        datatype = predict_datatype(manifest)
        dtype = _OUTPUT_DTYPES.get(datatype)
        if dtype is not None and result.dtype.kind in "biuf":
            array = np.ascontiguousarray(result, dtype=dtype)
        else:
            datatype = "BYTES"
            array = np.asarray(result)
    return datatype, array


def encode_output(output: Output, result: NDArray[Any], manifest: Manifest) -> dict[str, object]:
    """One response output tensor: name, datatype, shape and flat (row-major) data."""
    datatype, array = _output_array(output, result, manifest)
    flat = array.ravel()
    data: object = flat if datatype != "BYTES" else [str(value) for value in flat.tolist()]
    return {"name": output, "datatype": datatype, "shape": list(array.shape), "data": data}


def encode_binary_output(
    output: Output, result: NDArray[Any], manifest: Manifest
) -> tuple[dict[str, object], bytes]:
    """One response output tensor as the binary tensor extension sends it: the JSON part
    (``parameters.binary_data_size``, no ``data``) and the raw bytes that follow the header.

    Numbers are little-endian in their datatype's size, BOOL one byte each, and BYTES each
    element's UTF-8 text after its 4-byte little-endian length.
    """
    datatype, array = _output_array(output, result, manifest)
    if datatype == "BYTES":
        raw = b"".join(
            struct.pack("<I", len(text)) + text
            for text in (str(value).encode() for value in array.ravel().tolist())
        )
    else:
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    header: dict[str, object] = {
        "name": output,
        "datatype": datatype,
        "shape": list(array.shape),
        "parameters": {"binary_data_size": len(raw)},
    }
    return header, raw


def model_metadata(
    manifest: Manifest, versions: Sequence[int], engine: str | None = None
) -> dict[str, object]:
    """The model metadata response: the inputs (the matrix, or a table model's one per feature)
    and the model's outputs.

    Args:
        manifest: the version being described.
        versions: every served version of the model, any order.
        engine: what answers the version's calls (``trees`` or ``sklearn``), when known.
    """
    outputs: list[dict[str, object]] = [
        {"name": "predict", "datatype": predict_datatype(manifest), "shape": [-1]}
    ]
    if "predict_proba" in manifest.outputs:
        n_classes = len(manifest.classes) if manifest.classes is not None else -1
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, n_classes]})
    inputs: list[dict[str, object]]
    if manifest.features is None:
        inputs = [{"name": MATRIX_INPUT, "datatype": "FP64", "shape": [-1, manifest.n_features]}]
    else:
        inputs = [
            {"name": feature.name, "datatype": FEATURE_DATATYPES[feature.type], "shape": [-1]}
            for feature in manifest.features.features
        ]
    return {
        "name": manifest.name,
        "versions": [str(version) for version in sorted(versions)],
        "platform": FRAMEWORK,
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {
            "version": str(manifest.version),
            "task": manifest.task,
            "feature_names": list(manifest.feature_names) if manifest.feature_names else None,
            "classes": list(manifest.classes) if manifest.classes is not None else None,
            "engine": engine,
        },
    }


# Triton's config names BYTES tensors TYPE_STRING; every other datatype is TYPE_<datatype>.
_CONFIG_TYPES: Final = {"BYTES": "TYPE_STRING"}


def _config_tensor(tensor: dict[str, Any]) -> dict[str, object]:
    """A metadata tensor (shape with its batch dimension) as a config tensor (dims without)."""
    datatype = tensor["datatype"]
    dims = list(tensor["shape"][1:])
    config: dict[str, object] = {
        "name": tensor["name"],
        "data_type": _CONFIG_TYPES.get(datatype, f"TYPE_{datatype}"),
        "dims": dims or [1],
    }
    if not dims:
        # A tensor that is only its batch dimension: Triton's idiom is dims [1], reshaped to [].
        config["reshape"] = {"shape": []}
    return config


def model_config(
    manifest: Manifest,
    *,
    max_request_rows: int,
    max_batch_rows: int,
    max_wait_ms: float,
    instances: int,
    engine: str | None = None,
) -> dict[str, object]:
    """The model configuration response, in Triton's JSON shape.

    ``max_batch_size`` is the most rows one request may carry, so clients batch along the first
    dimension; the tensors' ``dims`` are those of :func:`model_metadata` without it.

    Args:
        manifest: the version being described.
        max_request_rows: the most rows one request may carry.
        max_batch_rows: the most rows one model call runs (the batcher's limit).
        max_wait_ms: how long a batch waits for more rows.
        instances: model calls of one version that may run at the same time.
        engine: what answers the version's calls, when known.
    """
    metadata = model_metadata(manifest, [manifest.version], engine)
    inputs: list[dict[str, Any]] = metadata["inputs"]  # type: ignore[assignment]
    outputs: list[dict[str, Any]] = metadata["outputs"]  # type: ignore[assignment]
    parameters = {
        "task": manifest.task,
        "max_batch_rows": str(max_batch_rows),
        **({"engine": engine} if engine is not None else {}),
    }
    return {
        "name": manifest.name,
        "platform": FRAMEWORK,
        "backend": FRAMEWORK,
        # The two newest valid versions of a model stay loaded and addressable.
        "version_policy": {"latest": {"num_versions": 2}},
        "max_batch_size": max_request_rows,
        "input": [
            {
                **_config_tensor(tensor),
                "format": "FORMAT_NONE",
                "is_shape_tensor": False,
                "allow_ragged_batch": False,
                "optional": False,
            }
            for tensor in inputs
        ],
        "output": [
            {**_config_tensor(tensor), "label_filename": "", "is_shape_tensor": False}
            for tensor in outputs
        ],
        "dynamic_batching": {
            "preferred_batch_size": [],
            "max_queue_delay_microseconds": round(max_wait_ms * 1000),
            "preserve_ordering": False,
        },
        "instance_group": [
            {"name": f"{manifest.name}_0", "kind": "KIND_CPU", "count": instances, "gpus": []}
        ],
        "parameters": {key: {"string_value": value} for key, value in parameters.items()},
    }
