"""The one table that maps errors to HTTP responses: ``{"error": "<sentence>"}`` and a status.

Domain errors (``service.errors``) carry no status; this module decides it. Werkzeug's HTTP
exceptions (404 for unknown routes, 405, 408 and 413 from the body time-out and limit) get the
same JSON shape, and anything unexpected becomes a 500 with a generic message: a client never
sees a traceback. :func:`answer_for` is the mapping; the Quart app's error handlers and the ASGI
prediction path both answer through it.
"""

from __future__ import annotations

import logging

from quart import Quart
from quart import Response
from werkzeug.exceptions import HTTPException

from service.errors import AuthenticationError
from service.errors import BodyTooLargeError
from service.errors import DeadlineExceededError
from service.errors import ForbiddenError
from service.errors import InvalidInputError
from service.errors import ModelNotFoundError
from service.errors import PredictionError
from service.errors import ServiceError
from service.errors import TooManyRowsError
from service.errors import UnavailableError
from service.errors import UnsupportedEncodingError
from service.errors import UnsupportedMediaTypeError
from service.http.encoding import ACCEPTED_CODINGS
from service.http.responses import Answer
from service.http.responses import json_answer
from service.http.responses import to_response

__all__ = ["STATUS_BY_ERROR", "answer_for", "register_error_handlers", "status_for"]

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[ServiceError], int] = {
    InvalidInputError: 400,  # includes ModelInputError: the model rejected this request's rows
    AuthenticationError: 401,
    ForbiddenError: 403,
    ModelNotFoundError: 404,
    TooManyRowsError: 413,
    BodyTooLargeError: 413,  # inflated past the limit; the body was read, the connection is fine
    UnsupportedMediaTypeError: 415,
    UnsupportedEncodingError: 415,  # RFC 9110 §15.5.16
    PredictionError: 500,
    UnavailableError: 503,  # OverloadedError, ShuttingDownError
    DeadlineExceededError: 504,
}

# Werkzeug's default descriptions are paragraphs of HTML-era prose; these are one sentence each.
_HTTP_MESSAGES: dict[int, str] = {
    404: "No such route.",
    405: "Method not allowed on this route.",
    408: "The request body did not arrive in time.",
    413: "The request body is too large.",
}


def status_for(error: ServiceError) -> int:
    """The status of ``error``: the entry of its nearest class in the table (500 if none)."""
    for cls in type(error).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def answer_for(error: Exception) -> Answer:
    """The answer to a request that raised ``error``."""
    if isinstance(error, ServiceError):
        return _service_answer(error)
    if isinstance(error, HTTPException):
        return _http_answer(error)
    log.exception("unhandled error", exc_info=error)
    return json_answer({"error": "Internal server error."}, 500)


def _service_answer(error: ServiceError) -> Answer:
    status = status_for(error)
    headers = {}
    if isinstance(error, UnavailableError):
        headers["Retry-After"] = str(error.retry_after_s)
    elif isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(error, UnsupportedEncodingError):
        headers["Accept-Encoding"] = ACCEPTED_CODINGS
    if status >= 500 and not isinstance(error, UnavailableError | DeadlineExceededError):
        log.error("request failed: %s", error)
    return json_answer({"error": str(error)}, status, headers)


def _http_answer(error: HTTPException) -> Answer:
    status = error.code or 500
    message = _HTTP_MESSAGES.get(status) or f"{error.name}."
    headers = {}
    if status == 413:
        # The body was refused unread, so the connection cannot carry another request; saying
        # so keeps keep-alive clients from reusing it.
        headers["Connection"] = "close"
    if status == 405 and error.valid_methods:  # type: ignore[attr-defined]
        headers["Allow"] = ", ".join(error.valid_methods)  # type: ignore[attr-defined]
    return json_answer({"error": message}, status, headers)


def register_error_handlers(app: Quart) -> None:
    """Answer every error through :func:`answer_for`; lookups walk the MRO."""

    @app.errorhandler(Exception)
    async def _answer(error: Exception) -> Response:
        return to_response(answer_for(error))
