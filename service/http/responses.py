"""JSON in and out: one fast encoder (orjson) and one way to read a JSON body."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from quart import Request
from quart import Response

from service.errors import InvalidInputError
from service.errors import UnsupportedMediaTypeError

__all__ = ["json_response", "read_json"]

JSON_MIMETYPE = "application/json"


def json_response(
    payload: object, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Serialize ``payload`` with orjson (numpy arrays included) into a JSON response."""
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status=status, headers=dict(headers or {}), mimetype=JSON_MIMETYPE)


def _is_json(mimetype: str) -> bool:
    return mimetype == JSON_MIMETYPE or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


async def read_json(request: Request, *, content_type_required: bool = True) -> object:
    """Decode the request body as JSON.

    Args:
        request: the current request.
        content_type_required: the Flask routes require a JSON Content-Type, as Flask does
            (415 otherwise). The V2 and V1 routes read the body as JSON whatever its
            Content-Type says, as Triton and KServe do: ``curl -d`` sends
            ``application/x-www-form-urlencoded`` and tritonclient sends none.

    Raises:
        UnsupportedMediaTypeError: required, and the Content-Type is missing or not JSON.
        InvalidInputError: the body is not valid UTF-8 JSON.
        RequestEntityTooLarge: the body is over ``MAX_CONTENT_LENGTH`` (Quart raises it).
    """
    if content_type_required and not _is_json(request.mimetype):
        raise UnsupportedMediaTypeError(request.content_type or None)
    body = await request.get_data(cache=False)
    if not body:
        raise InvalidInputError("The body is empty; send a JSON document.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInputError(f"The body is not valid JSON: {error.msg}.") from None
