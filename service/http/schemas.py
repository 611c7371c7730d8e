"""JSON Schemas (OpenAPI 3.0 dialect) of every request and response body the API speaks.

They document the API (``/openapi.json``) and drive its schema tests; requests are not validated
against them at run time: the routes' own parsing (``service.inputs``, ``service.v2codec``) is the
validation, faster and with messages that name the bad row or tensor.
"""

from __future__ import annotations

from typing import Any
from typing import Final

from service.store.manifest import NAME_PATTERN
from service.v2codec import INPUT_DATATYPES

__all__ = ["MODEL_NAME_PATTERN", "SCHEMAS", "ref"]

Schema = dict[str, Any]

MODEL_NAME_PATTERN: Final = f"^{NAME_PATTERN.pattern}$"

_OUTPUT_DATATYPES: Final = ["BOOL", "INT64", "FP64", "BYTES"]


def ref(name: str) -> Schema:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], *, required: list[str] | None = None) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


_NUMBER: Final[Schema] = {"type": "number"}
_STRING: Final[Schema] = {"type": "string"}
_BOOLEAN: Final[Schema] = {"type": "boolean"}
# A table model's value: a number, string, boolean, or null where the feature is nullable
# (OpenAPI 3.0 spells null as a nullable type).
_VALUE: Final[Schema] = {"anyOf": [{"type": "number", "nullable": True}, _STRING, _BOOLEAN]}

SCHEMAS: Final[dict[str, Schema]] = {
    "Error": _object(
        {"error": {"type": "string", "description": "One sentence saying what went wrong."}},
        required=["error"],
    ),
    "Label": {
        "description": "A prediction: a class label (number, string or boolean) or a value.",
        "anyOf": [_NUMBER, _STRING, _BOOLEAN],
    },
    "FeatureRow": {
        "description": "One row: the feature values in order, or an object keyed by feature "
        "name (when the model has feature names). Numbers for an all-numeric model; a table "
        "model (fitted on a DataFrame) also takes strings, booleans and null for missing.",
        "anyOf": [
            _array(_VALUE, minItems=1),
            {"type": "object", "additionalProperties": _VALUE, "minProperties": 1},
        ],
    },
    "Rows": {
        "description": "Rows, or one row as a flat array of values.",
        "anyOf": [_array(ref("FeatureRow"), minItems=1), _array(_VALUE, minItems=1)],
    },
    "PredictRequest": {
        "description": 'The tutorial service\'s bodies: {"features": rows}, {"instances": rows} '
        "or a bare array of rows.",
        "anyOf": [
            _object({"features": ref("Rows")}, required=["features"]),
            _object({"instances": ref("Rows")}, required=["instances"]),
            _array(ref("FeatureRow"), minItems=1),
        ],
    },
    "PredictResponse": _object(
        {"prediction": _array(ref("Label"), description="model.predict(X).tolist()")},
        required=["prediction"],
    ),
    "PredictProbaResponse": _object(
        {
            "probabilities": _array(_array(_NUMBER), description="One row per input row."),
            "classes": _array(ref("Label"), description="The columns' class labels."),
        },
        required=["probabilities", "classes"],
    ),
    # Open Inference Protocol (V2).
    "ServerMetadata": _object(
        {"name": _STRING, "version": _STRING, "extensions": _array(_STRING)},
        required=["name", "version", "extensions"],
    ),
    "ServerLive": _object({"live": _BOOLEAN}, required=["live"]),
    "ServerReady": _object({"ready": _BOOLEAN}, required=["ready"]),
    "ModelReady": _object({"name": _STRING, "ready": _BOOLEAN}, required=["name", "ready"]),
    "MetadataTensor": _object(
        {
            "name": _STRING,
            "datatype": _STRING,
            "shape": _array({"type": "integer"}, description="-1 marks a variable dimension."),
        },
        required=["name", "datatype", "shape"],
    ),
    "ModelMetadata": _object(
        {
            "name": _STRING,
            "versions": _array(_STRING),
            "platform": {"type": "string", "example": "scikit-learn"},
            "inputs": _array(ref("MetadataTensor")),
            "outputs": _array(ref("MetadataTensor")),
            "parameters": _object(
                {
                    "version": _STRING,
                    "task": {"type": "string", "enum": ["classification", "regression"]},
                    "feature_names": {**_array(_STRING), "nullable": True},
                    "classes": {**_array(ref("Label")), "nullable": True},
                    "engine": {
                        "type": "string",
                        "nullable": True,
                        "example": "trees",
                        "description": "What answers the version's calls: trees (the exact "
                        "tree engine) or sklearn.",
                    },
                }
            ),
        },
        required=["name", "platform", "inputs", "outputs"],
    ),
    "ConfigTensor": _object(
        {
            "name": _STRING,
            "data_type": {"type": "string", "example": "TYPE_FP64"},
            "dims": _array(
                {"type": "integer"}, description="The shape without the batch dimension."
            ),
            "reshape": _object({"shape": _array({"type": "integer"})}),
        },
        required=["name", "data_type", "dims"],
    ),
    "ModelConfig": _object(
        {
            "name": _STRING,
            "platform": {"type": "string", "example": "scikit-learn"},
            "backend": {"type": "string", "example": "scikit-learn"},
            "max_batch_size": {
                "type": "integer",
                "description": "The most rows one request may carry (PREDICTION_MAX_REQUEST_ROWS).",
            },
            "input": _array(ref("ConfigTensor")),
            "output": _array(ref("ConfigTensor")),
            "dynamic_batching": _object(
                {
                    "preferred_batch_size": _array({"type": "integer"}),
                    "max_queue_delay_microseconds": {"type": "integer"},
                    "preserve_ordering": _BOOLEAN,
                }
            ),
            "version_policy": {"type": "object"},
            "instance_group": _array({"type": "object"}),
            "parameters": {
                "type": "object",
                "additionalProperties": _object({"string_value": _STRING}),
            },
        },
        required=["name", "platform", "max_batch_size", "input", "output"],
    ),
    "TensorData": {
        "description": "Tensor elements, flat in row-major order or nested as the shape says.",
        "type": "array",
        "items": {
            "anyOf": [{"type": "number", "nullable": True}, _STRING, _BOOLEAN, ref("TensorData")]
        },
    },
    "RequestInput": _object(
        {
            "name": {
                "type": "string",
                "minLength": 1,
                "description": "Any name for one [N, n_features] tensor; a feature name for "
                "one [N] tensor per feature (a table model takes only those, BYTES for "
                "strings, BOOL for booleans, null data for missing values).",
            },
            "shape": _array({"type": "integer", "minimum": 0}, minItems=1),
            "datatype": {"type": "string", "enum": [*INPUT_DATATYPES, "BOOL", "BYTES"]},
            "parameters": {
                "type": "object",
                "description": "binary_data_size: the tensor's bytes follow the JSON header "
                "(Triton's binary tensor extension).",
            },
            "data": ref("TensorData"),
        },
        required=["name", "shape", "datatype"],
    ),
    "RequestOutput": _object(
        {
            "name": {"type": "string", "enum": ["predict", "predict_proba"]},
            "parameters": {
                "type": "object",
                "description": "binary_data: true answers this output as raw bytes after the "
                "JSON header (Triton's binary tensor extension).",
            },
        },
        required=["name"],
    ),
    "InferenceRequest": _object(
        {
            "id": {"type": "string", "description": "Echoed in the response."},
            "parameters": {
                "type": "object",
                "description": "binary_data_output: true answers every output as raw bytes "
                "after the JSON header unless the output's binary_data says otherwise.",
            },
            "inputs": _array(ref("RequestInput"), minItems=1),
            "outputs": _array(
                ref("RequestOutput"), description="The outputs to answer; predict when absent."
            ),
        },
        required=["inputs"],
    ),
    "ResponseOutput": _object(
        {
            "name": {"type": "string", "enum": ["predict", "predict_proba"]},
            "shape": _array({"type": "integer", "minimum": 0}),
            "datatype": {"type": "string", "enum": _OUTPUT_DATATYPES},
            "parameters": {"type": "object"},
            "data": ref("TensorData"),
        },
        required=["name", "shape", "datatype", "data"],
    ),
    "InferenceResponse": _object(
        {
            "model_name": _STRING,
            "model_version": _STRING,
            "id": _STRING,
            "parameters": {"type": "object"},
            "outputs": _array(ref("ResponseOutput")),
        },
        required=["model_name", "outputs"],
    ),
    # V1.
    "V1PredictRequest": _object(
        {"instances": _array(ref("FeatureRow"), minItems=1)}, required=["instances"]
    ),
    "V1PredictResponse": _object({"predictions": _array(ref("Label"))}, required=["predictions"]),
    "V1ModelStatus": _object({"name": _STRING, "ready": _BOOLEAN}, required=["name", "ready"]),
    # Operations.
    "Health": _object({"status": {"type": "string", "enum": ["alive"]}}, required=["status"]),
    "Readiness": _object(
        {
            "status": {"type": "string", "enum": ["ready"]},
            "models": {
                "type": "object",
                "description": "Each served model's loaded versions, newest first.",
                "additionalProperties": _array({"type": "integer"}),
            },
        },
        required=["status", "models"],
    ),
    # Model repository extension.
    "RepositoryIndexRequest": _object(
        {"ready": {"type": "boolean", "description": "Accepted and ignored."}}
    ),
    "RepositoryIndex": _array(
        _object(
            {
                "name": _STRING,
                "version": _STRING,
                "state": {"type": "string", "enum": ["READY", "UNAVAILABLE"]},
                "reason": _STRING,
            },
            required=["name", "version", "state"],
        )
    ),
    "Empty": {"type": "object", "description": "An empty object."},
}
