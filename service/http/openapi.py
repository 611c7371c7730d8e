"""The API's own description: ``/openapi.json`` (OpenAPI 3.0) and ``/docs`` (Swagger UI).

The document is written here by hand from the schemas in ``service.http.schemas``; a test
compares its paths with the app's URL map, so a route without documentation fails CI. Swagger UI
comes from the ``swagger-ui-bundle`` package, so ``/docs`` works offline; without that package the
page loads Swagger UI from a CDN instead.
"""

from __future__ import annotations

import functools
import importlib.resources
from importlib.resources.abc import Traversable
from typing import Any
from typing import Final

from quart import Blueprint
from quart import Response
from quart import abort

from service import __version__
from service.http.responses import json_response
from service.http.schemas import MODEL_NAME_PATTERN
from service.http.schemas import SCHEMAS
from service.http.schemas import ref

__all__ = ["blueprint", "openapi_document"]

blueprint = Blueprint("openapi", __name__)

Spec = dict[str, Any]

_JSON: Final = "application/json"
# Swagger UI 4 renders OpenAPI 3.0 documents (3.1 needs Swagger UI 5).
OPENAPI_VERSION: Final = "3.0.3"
_SWAGGER_CDN: Final = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@4.15.5"
_ASSETS: Final = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
}


@blueprint.get("/openapi.json")
async def openapi_json() -> Response:
    """This API's OpenAPI 3.0 document."""
    return json_response(openapi_document())


@blueprint.get("/docs")
async def docs() -> Response:
    """Swagger UI rendering ``/openapi.json``."""
    return Response(_docs_page(), status=200, mimetype="text/html")


@blueprint.get("/docs/static/<asset>")
async def docs_asset(asset: str) -> Response:
    """Swagger UI's script and stylesheet, served from the ``swagger-ui-bundle`` package."""
    content_type = _ASSETS.get(asset)
    body = _asset(asset) if content_type is not None else None
    if content_type is None or body is None:
        # The same 404 as an unknown route: to a client, a missing file is one.
        abort(404)
    headers = {"Cache-Control": "public, max-age=86400"}
    return Response(body, status=200, headers=headers, content_type=content_type)


@functools.cache
def _swagger_ui_dir() -> Traversable | None:
    try:
        vendor = importlib.resources.files("swagger_ui_bundle") / "vendor"
    except ModuleNotFoundError:
        return None
    found = sorted(
        (item for item in vendor.iterdir() if item.name.startswith("swagger-ui-")),
        key=lambda item: item.name,
    )
    return found[-1] if found else None


@functools.cache
def _asset(asset: str) -> bytes | None:
    directory = _swagger_ui_dir()
    return None if directory is None else (directory / asset).read_bytes()


@functools.cache
def _docs_page() -> str:
    # Relative URLs, so the page also works behind a proxy that adds a path prefix.
    base = "docs/static" if _swagger_ui_dir() is not None else _SWAGGER_CDN
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>prediction-service API</title>
<link rel="stylesheet" href="{base}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({{url: "openapi.json", dom_id: "#swagger-ui"}});</script>
</body>
</html>
"""


def _header(name: str) -> Spec:
    return {"$ref": f"#/components/headers/{name}"}


def _response(
    description: str, schema: Spec, *, headers: tuple[str, ...] = (), media_type: str = _JSON
) -> Spec:
    return {
        "description": description,
        "headers": {name: _header(name) for name in ("X-Request-ID", *headers)},
        "content": {media_type: {"schema": schema}},
    }


def _errors(*statuses: int) -> dict[str, Spec]:
    return {
        str(status): {"$ref": f"#/components/responses/{_ERROR_NAMES[status]}"}
        for status in statuses
    }


def _param(name: str) -> Spec:
    return {"$ref": f"#/components/parameters/{name}"}


def _body(schema: Spec, example: object | None = None, *, required: bool = True) -> Spec:
    media: Spec = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"required": required, "content": {_JSON: media}}


_ERROR_NAMES: Final = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    500: "ServerError",
    503: "Unavailable",
    504: "Timeout",
}
_ERROR_DESCRIPTIONS: Final = {
    400: "Invalid input: malformed JSON, wrong shape, datatype or feature count, a value that "
    "is not a finite number or not of its feature's type, an unknown feature, input or output "
    "name, a category the model does not know; the message names it.",
    401: "The bearer token is missing or wrong.",
    403: "The model repository API is disabled (no PREDICTION_ADMIN_TOKEN is configured).",
    404: "No such model or version (or route).",
    413: "The body is over PREDICTION_MAX_BODY_BYTES (before or after its Content-Encoding) or "
    "has more than PREDICTION_MAX_REQUEST_ROWS rows.",
    415: "The body is declared with a Content-Type that is not JSON, or has a Content-Encoding "
    "other than gzip, deflate and identity (the answer's Accept-Encoding lists those).",
    500: "The model failed for a reason that is not the request's.",
    503: "Overloaded (queue full), not ready yet or draining; retry after Retry-After seconds.",
    504: "The request's deadline passed before its batch ran.",
}
_ERROR_HEADERS: Final = {
    401: ("WWW-Authenticate",),
    415: ("Accept-Encoding",),
    503: ("Retry-After",),
}

_PREDICTION_ERRORS: Final = (400, 404, 413, 415, 500, 503, 504)
_MODEL_HEADERS: Final = ("X-Model-Name", "X-Model-Version")

_IRIS_ROW: Final = [5.1, 3.5, 1.4, 0.2]
_V2_EXAMPLE: Final = {
    "id": "42",
    "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": _IRIS_ROW}],
    "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
}


def _predict_operation(summary: str, response: Spec, operation_id: str) -> Spec:
    return {
        "tags": ["Flask-compatible"],
        "summary": summary,
        "operationId": operation_id,
        "parameters": [_param("ModelQuery"), _param("VersionQuery"), _param("RequestTimeout")],
        "requestBody": _body(ref("PredictRequest"), {"features": [_IRIS_ROW]}),
        "responses": {
            "200": _response("One answer per row, in order.", response, headers=_MODEL_HEADERS),
            **_errors(*_PREDICTION_ERRORS),
        },
    }


def _v2_model_operations(versioned: bool) -> dict[str, Spec]:
    params = [_param("ModelName"), *([_param("ModelVersion")] if versioned else [])]
    suffix = "Version" if versioned else ""
    bad_version = (400,) if versioned else ()
    return {
        "metadata": {
            "get": {
                "tags": ["Open Inference Protocol (V2)"],
                "summary": "Model metadata: platform, versions, input and outputs.",
                "operationId": f"v2ModelMetadata{suffix}",
                "parameters": params,
                "responses": {
                    "200": _response("The model's metadata.", ref("ModelMetadata")),
                    **_errors(*bad_version, 404),
                },
            }
        },
        "config": {
            "get": {
                "tags": ["Open Inference Protocol (V2)"],
                "summary": "Model configuration in Triton's JSON shape (get_model_config).",
                "operationId": f"v2ModelConfig{suffix}",
                "parameters": params,
                "responses": {
                    "200": _response("The model's configuration.", ref("ModelConfig")),
                    **_errors(*bad_version, 404),
                },
            }
        },
        "ready": {
            "get": {
                "tags": ["Open Inference Protocol (V2)"],
                "summary": "Whether the model (version) is ready for inference.",
                "operationId": f"v2ModelReady{suffix}",
                "parameters": params,
                "responses": {
                    "200": _response("The model is ready.", ref("ModelReady")),
                    **_errors(*bad_version, 404, 503),
                },
            }
        },
        "infer": {
            "post": {
                "tags": ["Open Inference Protocol (V2)"],
                "summary": "Inference. The body is read as JSON whatever its Content-Type says.",
                "description": "Inputs: one [N, n_features] tensor, or one [N] tensor per "
                "feature named by the model's feature names; datatypes FP32, FP64, INT32, "
                "INT64, as JSON data or binary data after the JSON header. Outputs: predict (the "
                "default) and predict_proba. The body may be gzip or deflate "
                "(Content-Encoding); large answers are compressed as Accept-Encoding allows.",
                "operationId": f"v2Infer{suffix}",
                "parameters": [*params, _param("RequestTimeout")],
                "requestBody": _body(ref("InferenceRequest"), _V2_EXAMPLE),
                "responses": {
                    "200": _infer_response(),
                    **_errors(*_PREDICTION_ERRORS),
                },
            }
        },
    }


def _infer_response() -> Spec:
    response = _response(
        "The asked outputs, data flat in row-major order; with binary outputs asked, an "
        "application/octet-stream body: the JSON header (Inference-Header-Content-Length "
        "bytes), then each binary output's little-endian bytes.",
        ref("InferenceResponse"),
        headers=(*_MODEL_HEADERS, "Inference-Header-Content-Length"),
    )
    response["content"]["application/octet-stream"] = {
        "schema": {"type": "string", "format": "binary"}
    }
    return response


def _repository_operation(summary: str, operation_id: str, response: Spec, *errors: int) -> Spec:
    return {
        "tags": ["Model repository (V2 extension)"],
        "summary": summary,
        "operationId": operation_id,
        "security": [{"bearerAuth": []}],
        "responses": {"200": response, **_errors(401, 403, *errors)},
    }


def _paths() -> dict[str, Spec]:
    plain = _v2_model_operations(versioned=False)
    pinned = _v2_model_operations(versioned=True)
    index_ok = _response("Every known version, READY or UNAVAILABLE.", ref("RepositoryIndex"))
    done = _response("Done.", ref("Empty"))
    index_post = _repository_operation(
        "The repository index (Triton's POST form).", "repositoryIndexPost", index_ok
    )
    index_post["requestBody"] = _body(ref("RepositoryIndexRequest"), required=False)
    model = "/v2/models/{name}"
    version = "/v2/models/{name}/versions/{version}"
    return {
        "/predict": {
            "post": _predict_operation(
                "model.predict on the rows.", ref("PredictResponse"), "predict"
            )
        },
        "/predict_proba": {
            "post": _predict_operation(
                "model.predict_proba on the rows, with the class labels.",
                ref("PredictProbaResponse"),
                "predictProba",
            )
        },
        "/v2": {
            "get": {
                "tags": ["Open Inference Protocol (V2)"],
                "summary": "Server metadata.",
                "operationId": "v2ServerMetadata",
                "responses": {
                    "200": _response("Name, version, extensions.", ref("ServerMetadata"))
                },
            }
        },
        "/v2/health/live": {
            "get": {
                "tags": ["Open Inference Protocol (V2)"],
                "summary": "Server liveness.",
                "operationId": "v2ServerLive",
                "responses": {"200": _response("The server is live.", ref("ServerLive"))},
            }
        },
        "/v2/health/ready": {
            "get": {
                "tags": ["Open Inference Protocol (V2)"],
                "summary": "Server readiness: models loaded and not draining (as /readyz).",
                "operationId": "v2ServerReady",
                "responses": {
                    "200": _response("The server is ready.", ref("ServerReady")),
                    **_errors(503),
                },
            }
        },
        model: plain["metadata"],
        f"{model}/config": plain["config"],
        f"{model}/ready": plain["ready"],
        f"{model}/infer": plain["infer"],
        version: pinned["metadata"],
        f"{version}/config": pinned["config"],
        f"{version}/ready": pinned["ready"],
        f"{version}/infer": pinned["infer"],
        "/v2/repository/index": {
            "get": _repository_operation("The repository index.", "repositoryIndex", index_ok),
            "post": index_post,
        },
        "/v2/repository/models/{name}/load": {
            "post": {
                **_repository_operation(
                    "Load the model's newest valid versions now.", "repositoryLoad", done, 404
                ),
                "parameters": [_param("ModelName")],
            }
        },
        "/v2/repository/models/{name}/unload": {
            "post": {
                **_repository_operation(
                    "Stop serving the model once its accepted requests finish.",
                    "repositoryUnload",
                    done,
                    404,
                ),
                "parameters": [_param("ModelName")],
            }
        },
        "/v1/models/{name}:predict": {
            "post": {
                "tags": ["V1"],
                "summary": "model.predict on the instances.",
                "operationId": "v1Predict",
                "parameters": [_param("ModelName"), _param("RequestTimeout")],
                "requestBody": _body(ref("V1PredictRequest"), {"instances": [_IRIS_ROW]}),
                "responses": {
                    "200": _response(
                        "One prediction per instance, in order.",
                        ref("V1PredictResponse"),
                        headers=_MODEL_HEADERS,
                    ),
                    **_errors(*_PREDICTION_ERRORS),
                },
            }
        },
        "/v1/models/{name}": {
            "get": {
                "tags": ["V1"],
                "summary": "Model status.",
                "operationId": "v1ModelStatus",
                "parameters": [_param("ModelName")],
                "responses": {
                    "200": _response("The model is served.", ref("V1ModelStatus")),
                    **_errors(404, 503),
                },
            }
        },
        "/": {
            "get": {
                "tags": ["V1"],
                "summary": "Liveness, as V1 clients (KServe's SDK) ask for it.",
                "operationId": "v1Live",
                "responses": {"200": _response("The process serves HTTP.", ref("Health"))},
            }
        },
        "/healthz": {
            "get": {
                "tags": ["Operations"],
                "summary": "Liveness.",
                "operationId": "healthz",
                "responses": {"200": _response("The process serves HTTP.", ref("Health"))},
            }
        },
        "/readyz": {
            "get": {
                "tags": ["Operations"],
                "summary": "Readiness: every model loaded and warmed, not draining.",
                "operationId": "readyz",
                "responses": {
                    "200": _response("Ready, with the served versions.", ref("Readiness")),
                    **_errors(503),
                },
            }
        },
        "/metrics": {
            "get": {
                "tags": ["Operations"],
                "summary": "Prometheus metrics (OpenMetrics when the scraper asks for it).",
                "operationId": "metrics",
                "responses": {
                    "200": {
                        "description": "The metrics.",
                        "headers": {"X-Request-ID": _header("X-Request-ID")},
                        "content": {
                            "text/plain": {"schema": {"type": "string"}},
                            "application/openmetrics-text": {"schema": {"type": "string"}},
                        },
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "tags": ["Operations"],
                "summary": "This document.",
                "operationId": "openapi",
                "responses": {"200": _response("OpenAPI 3.0.", {"type": "object"})},
            }
        },
        "/docs": {
            "get": {
                "tags": ["Operations"],
                "summary": "Swagger UI for this document.",
                "operationId": "docs",
                "responses": {
                    "200": _response("An HTML page.", {"type": "string"}, media_type="text/html")
                },
            }
        },
        "/docs/static/{asset}": {
            "get": {
                "tags": ["Operations"],
                "summary": "Swagger UI's script and stylesheet.",
                "operationId": "docsAsset",
                "parameters": [
                    {
                        "name": "asset",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(_ASSETS)},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "headers": {"X-Request-ID": _header("X-Request-ID")},
                        "content": {
                            "text/css": {"schema": {"type": "string"}},
                            "application/javascript": {"schema": {"type": "string"}},
                        },
                    },
                    **_errors(404),
                },
            }
        },
    }


def _components() -> Spec:
    string = {"type": "string"}
    return {
        "schemas": SCHEMAS,
        "parameters": {
            "ModelName": {
                "name": "name",
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": MODEL_NAME_PATTERN, "example": "iris"},
            },
            "ModelVersion": {
                "name": "version",
                "in": "path",
                "required": True,
                "description": "A positive integer; the newest version when the path has none.",
                "schema": {"type": "string", "pattern": "^[0-9]+$", "example": "1"},
            },
            "ModelQuery": {
                "name": "model",
                "in": "query",
                "description": "The model; the default model when absent.",
                "schema": {"type": "string", "example": "iris"},
            },
            "VersionQuery": {
                "name": "version",
                "in": "query",
                # `?version=` (empty) means absent, as the route reads it.
                "description": "A positive integer; the newest version when absent or empty.",
                "schema": {"type": "string", "pattern": "^[0-9]*$", "example": "1"},
            },
            "RequestTimeout": {
                "name": "X-Request-Timeout-Ms",
                "in": "header",
                "description": "Shortens (never lengthens) PREDICTION_REQUEST_TIMEOUT_MS.",
                "schema": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            },
        },
        "headers": {
            "X-Request-ID": {
                "description": "The request's id: the client's when it sent a safe one.",
                "required": True,
                "schema": string,
            },
            "X-Model-Name": {"description": "The model that answered.", "schema": string},
            "X-Model-Version": {"description": "The version that answered.", "schema": string},
            "Retry-After": {"description": "Seconds to wait before retrying.", "schema": string},
            "WWW-Authenticate": {"description": "Bearer.", "schema": string},
            "Accept-Encoding": {
                "description": "The Content-Encodings accepted: gzip, deflate.",
                "schema": string,
            },
            "Inference-Header-Content-Length": {
                "description": "Bytes of the JSON header before the binary outputs' data.",
                "schema": string,
            },
        },
        "responses": {
            _ERROR_NAMES[status]: _response(
                description, ref("Error"), headers=_ERROR_HEADERS.get(status, ())
            )
            for status, description in _ERROR_DESCRIPTIONS.items()
        },
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "description": "PREDICTION_ADMIN_TOKEN; without one configured the routes "
                "answer 403.",
            }
        },
    }


@functools.cache
def openapi_document() -> Spec:
    """The OpenAPI 3.0 document of every route (built once; treat it as read-only)."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "prediction-service",
            "version": __version__,
            "description": "An async, micro-batching prediction server for scikit-learn "
            "models: the Flask tutorial's /predict contract, the Open Inference Protocol (V2) "
            'and V1. Every error is {"error": "<sentence>"}; every response carries '
            "X-Request-ID; unknown routes answer 404 and wrong methods 405.",
        },
        "tags": [
            {"name": "Flask-compatible"},
            {"name": "Open Inference Protocol (V2)"},
            {"name": "V1"},
            {"name": "Model repository (V2 extension)"},
            {"name": "Operations"},
        ],
        "paths": _paths(),
        "components": _components(),
    }
