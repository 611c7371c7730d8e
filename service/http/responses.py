"""JSON in and out: one fast encoder (orjson), one way to decode a JSON body, one answer type.

An :class:`Answer` is a response before any framework sees it: the prediction routes build one,
and both the ASGI prediction path (``service.http.fastpath``) and the Quart views send it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson
from quart import Response

from service.errors import InvalidInputError
from service.errors import UnsupportedMediaTypeError

__all__ = [
    "JSON_MIMETYPE",
    "Answer",
    "decode_json",
    "json_answer",
    "json_response",
    "mimetype_of",
    "require_json",
    "to_response",
]

JSON_MIMETYPE = "application/json"


@dataclass(frozen=True, slots=True)
class Answer:
    """A response: status, encoded body, the headers besides Content-Type/-Length, and the
    media type (JSON but for the V2 binary tensor extension's)."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    content_type: str = JSON_MIMETYPE


def json_answer(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Answer:
    """Serialize ``payload`` with orjson (numpy arrays included) into an answer."""
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return Answer(status, body, tuple(headers.items()) if headers else ())


def to_response(answer: Answer) -> Response:
    """The Quart response that sends ``answer``."""
    return Response(
        answer.body,
        status=answer.status,
        headers=dict(answer.headers),
        mimetype=answer.content_type,
    )


def json_response(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Serialize ``payload`` with orjson (numpy arrays included) into a JSON response."""
    return to_response(json_answer(payload, status, headers))


def mimetype_of(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower-case, without its parameters."""
    if not content_type:
        return ""
    return content_type.partition(";")[0].strip().lower()


def _is_json(mimetype: str) -> bool:
    return mimetype == JSON_MIMETYPE or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def require_json(content_type: str | None) -> None:
    """Refuse a body whose Content-Type is not JSON, as Flask's ``request.get_json`` does.

    Only the Flask routes require it. The V2 and V1 routes read the body as JSON whatever its
    Content-Type says, as Triton and KServe do: ``curl -d`` sends
    ``application/x-www-form-urlencoded`` and tritonclient sends none.

    Raises:
        UnsupportedMediaTypeError: the Content-Type is missing or not JSON.
    """
    if not _is_json(mimetype_of(content_type)):
        raise UnsupportedMediaTypeError(content_type or None)


def decode_json(body: bytes) -> object:
    """Decode a request body as JSON.

    Raises:
        InvalidInputError: the body is empty, or not valid UTF-8 JSON.
    """
    if not body:
        raise InvalidInputError("The body is empty; send a JSON document.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(f"The body is not valid JSON: {error.msg}.") from None
