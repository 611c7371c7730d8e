"""Open Inference Protocol (V2) REST routes, as KServe, Triton and MLServer clients speak them
(https://github.com/kserve/open-inference-protocol): health, server and model metadata, model
readiness and inference, plus Triton's model configuration (``/config``) and binary tensor
extension, in and out.

:func:`infer_answer` is the inference route; the ASGI prediction path calls it directly, and the
Quart views call it for the requests that path leaves to Quart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
from numpy.typing import NDArray
from quart import Blueprint
from quart import Response

from service import __version__
from service.errors import InvalidInputError
from service.errors import UnsupportedMediaTypeError
from service.http.encoding import read_body
from service.http.exchange import Exchange
from service.http.exchange import current_exchange
from service.http.predicting import model_headers
from service.http.predicting import model_ready_answer
from service.http.predicting import parse_version
from service.http.predicting import request_timeout_s
from service.http.predicting import resolve_and_parse
from service.http.responses import Answer
from service.http.responses import decode_json
from service.http.responses import json_answer
from service.http.responses import json_response
from service.http.responses import mimetype_of
from service.http.responses import to_response
from service.http.state import AppState
from service.http.state import get_state
from service.loading import ServedVersion
from service.v2codec import InferenceRequest
from service.v2codec import decode_request
from service.v2codec import encode_binary_output
from service.v2codec import encode_output
from service.v2codec import model_config
from service.v2codec import model_metadata
from service.v2codec import split_binary_body

__all__ = ["EXTENSIONS", "SERVER_NAME", "blueprint", "infer_answer"]

blueprint = Blueprint("v2", __name__)

SERVER_NAME = "prediction-service"
EXTENSIONS = ("binary_tensor_data", "model_repository")
"""Protocol extensions served besides the core API (Triton's names)."""
# Triton's binary tensor extension: the JSON header's length, raw tensor bytes after it.
BINARY_HEADER = "Inference-Header-Content-Length"
_BINARY_KEY = BINARY_HEADER.lower()
_BINARY_MIMETYPES = frozenset({"", "application/json", "application/octet-stream"})
_OCTET_STREAM = "application/octet-stream"


@blueprint.get("/v2")
async def server_metadata() -> Response:
    """The server's name, version and protocol extensions."""
    return json_response(
        {"name": SERVER_NAME, "version": __version__, "extensions": list(EXTENSIONS)}
    )


@blueprint.get("/v2/health/live")
async def server_live() -> Response:
    """200 while the process serves HTTP at all."""
    return json_response({"live": True})


@blueprint.get("/v2/health/ready")
async def server_ready() -> Response:
    """200 when the models are loaded and the server is not draining, else 503 (as /readyz)."""
    get_state().require_ready()
    return json_response({"ready": True})


@blueprint.get("/v2/models/<name>")
@blueprint.get("/v2/models/<name>/versions/<version>")
async def model_metadata_route(name: str, version: str | None = None) -> Response:
    """The model's platform, served versions, input and outputs."""
    registry = get_state().registry
    served = registry.resolve(name, parse_version(version))
    versions = [each.version for each in registry.models().get(name, ())]
    return json_response(model_metadata(served.manifest, versions, served.engine))


@blueprint.get("/v2/models/<name>/config")
@blueprint.get("/v2/models/<name>/versions/<version>/config")
async def model_config_route(name: str, version: str | None = None) -> Response:
    """The model's configuration in Triton's JSON shape (``get_model_config``, perf_analyzer)."""
    state = get_state()
    served = state.registry.resolve(name, parse_version(version))
    settings = state.settings
    return json_response(
        model_config(
            served.manifest,
            max_request_rows=settings.max_request_rows,
            max_batch_rows=settings.max_batch_rows,
            max_wait_ms=settings.max_wait_ms,
            instances=settings.max_concurrent_batches,
            engine=served.engine,
        )
    )


@blueprint.get("/v2/models/<name>/ready")
@blueprint.get("/v2/models/<name>/versions/<version>/ready")
async def model_ready(name: str, version: str | None = None) -> Response:
    """200 when the model (version) is served, 404 when it is not, 503 while draining."""
    return to_response(model_ready_answer(get_state(), name, parse_version(version)))


@blueprint.post("/v2/models/<name>/infer")
@blueprint.post("/v2/models/<name>/versions/<version>/infer")
async def infer(name: str, version: str | None = None) -> Response:
    """Run the model on the request's tensors; answer the asked outputs (``predict`` by default)."""
    return to_response(await infer_answer(get_state(), current_exchange(), name, version))


async def infer_answer(
    state: AppState, exchange: Exchange, name: str, version: str | None
) -> Answer:
    """Answer ``POST /v2/models/<name>[/versions/<version>]/infer``."""
    pinned = parse_version(version)
    timeout_s = request_timeout_s(state.settings, exchange)
    body, binary = await _read_body(state, exchange)
    served, decoded = resolve_and_parse(
        state,
        exchange,
        name,
        pinned,
        lambda manifest: decode_request(
            body, manifest, max_rows=state.settings.max_request_rows, binary=binary
        ),
    )
    manifest = served.manifest
    exchange.rows = len(decoded.matrix)
    if len(decoded.outputs) == 1:
        results = [
            await served.infer(
                decoded.outputs[0], decoded.matrix, timeout_s=timeout_s, span=exchange.span
            )
        ]
    else:
        # gather schedules both submissions before anything else runs: same version, one batch
        # round each.
        results = await asyncio.gather(
            *(
                served.infer(output, decoded.matrix, timeout_s=timeout_s, span=exchange.span)
                for output in decoded.outputs
            )
        )
    payload: dict[str, object] = {
        "model_name": served.name,
        "model_version": str(served.version),
    }
    if decoded.id is not None:
        payload["id"] = decoded.id
    if decoded.binary_outputs:
        return _binary_answer(payload, decoded, results, served)
    payload["outputs"] = [
        encode_output(output, result, manifest)
        for output, result in zip(decoded.outputs, results, strict=True)
    ]
    return json_answer(payload, headers=model_headers(served))


def _binary_answer(
    payload: dict[str, object],
    decoded: InferenceRequest,
    results: Sequence[NDArray[Any]],
    served: ServedVersion,
) -> Answer:
    """The response of the binary tensor extension: the JSON header, then the binary outputs'
    bytes in the order the header lists them."""
    manifest = served.manifest
    outputs: list[dict[str, object]] = []
    chunks: list[bytes] = []
    for output, result in zip(decoded.outputs, results, strict=True):
        if output in decoded.binary_outputs:
            tensor, raw = encode_binary_output(output, result, manifest)
            outputs.append(tensor)
            chunks.append(raw)
        else:
            outputs.append(encode_output(output, result, manifest))
    payload["outputs"] = outputs
    header = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    headers = {**model_headers(served), BINARY_HEADER: str(len(header))}
    return Answer(200, b"".join([header, *chunks]), tuple(headers.items()), _OCTET_STREAM)


async def _read_body(state: AppState, exchange: Exchange) -> tuple[object, bytes]:
    """The JSON request and any binary tensor data after it; no Content-Type reads as JSON.

    Raises:
        UnsupportedMediaTypeError: a Content-Type that is neither JSON nor, with binary data,
            ``application/octet-stream``.
        UnsupportedEncodingError: a Content-Encoding other than gzip, deflate and identity.
        BodyTooLargeError: a compressed body that inflates past the body size limit.
        InvalidInputError: a malformed body.
    """
    max_bytes = state.settings.max_body_bytes
    header_length = exchange.headers.get(_BINARY_KEY)
    if header_length is None:
        return decode_json(await read_body(exchange, max_bytes)), b""
    content_type = exchange.headers.get("content-type")
    mimetype = mimetype_of(content_type)
    if mimetype not in _BINARY_MIMETYPES and not mimetype.endswith("+json"):
        raise UnsupportedMediaTypeError(content_type)
    # The header's length counts the decoded body's bytes, as tritonclient compresses it whole.
    raw = await read_body(exchange, max_bytes)
    header, binary = split_binary_body(raw, header_length.strip())
    try:
        return orjson.loads(header), binary
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(f"The JSON header is not valid JSON: {error.msg}.") from None
