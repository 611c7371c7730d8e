"""Domain errors of the prediction service; they carry no HTTP status.

The HTTP layer (``service.http.errors``) holds the only table that maps them to
responses. The tree::

    ServiceError
    ├── InvalidInputError         the request's data cannot be turned into model input
    │   └── ModelInputError       the model itself rejected this request's rows
    ├── UnsupportedMediaTypeError the body is not declared as JSON
    ├── UnsupportedEncodingError  the body has a Content-Encoding the server cannot decode
    ├── BodyTooLargeError         the body inflates past the body size limit
    ├── TooManyRowsError          more rows than one request may carry
    ├── ModelNotFoundError        no loaded model or version by that name
    ├── AuthenticationError       the admin routes' bearer token is missing or wrong
    ├── ForbiddenError            the admin routes are off (no token configured)
    ├── UnavailableError          the server cannot take the request now (retry later)
    │   ├── OverloadedError       the batch queue is full (load shedding)
    │   └── ShuttingDownError     the server is draining or not ready
    ├── DeadlineExceededError     the request's deadline passed before its batch ran
    └── PredictionError           the model failed for a reason that is not the client's

Store errors (loading, verifying, registering artifacts) live in
``service.store.errors``; they never reach a client as such.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BodyTooLargeError",
    "DeadlineExceededError",
    "ForbiddenError",
    "InvalidInputError",
    "ModelInputError",
    "ModelNotFoundError",
    "OverloadedError",
    "PredictionError",
    "ServiceError",
    "ShuttingDownError",
    "TooManyRowsError",
    "UnavailableError",
    "UnsupportedEncodingError",
    "UnsupportedMediaTypeError",
]


_MAX_DETAIL_CHARS = 300


class ServiceError(Exception):
    """Base of every error a request can end in; ``str(error)`` is safe to show a client."""


class InvalidInputError(ServiceError):
    """Raised when a request's body or parameters cannot become model input."""


class ModelInputError(InvalidInputError):
    """Raised when the model rejected this request's own rows (``ValueError``/``TypeError``)."""

    def __init__(self, cause: BaseException) -> None:
        detail = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if len(detail) > _MAX_DETAIL_CHARS:
            # The model may quote the client's values (an unknown category): never echo a
            # megabyte back.
            detail = detail[: _MAX_DETAIL_CHARS - 3] + "..."
        super().__init__(f"The model rejected the input: {detail}")


class UnsupportedMediaTypeError(ServiceError):
    """Raised when a body is declared with a Content-Type that is not JSON."""

    def __init__(self, content_type: str | None) -> None:
        shown = content_type or "none"
        super().__init__(f"Expected a JSON body (Content-Type: application/json), got {shown}.")


class UnsupportedEncodingError(ServiceError):
    """Raised when a body's Content-Encoding is not one the server decodes."""

    def __init__(self, coding: str, supported: str) -> None:
        super().__init__(
            f"Content-Encoding {coding[:20]!r} is not supported; send {supported} or identity."
        )


class BodyTooLargeError(ServiceError):
    """Raised when a compressed body inflates past ``max_body_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"The request body inflates to more than {max_bytes} bytes.")


class TooManyRowsError(ServiceError):
    """Raised when one request carries more rows than ``max_request_rows``."""

    def __init__(self, rows: int, max_rows: int) -> None:
        super().__init__(f"The request has {rows} rows; at most {max_rows} are allowed.")


class ModelNotFoundError(ServiceError):
    """Raised when no loaded model (or version of it) has the name asked for."""

    def __init__(self, name: str, version: int | None = None) -> None:
        if version is None:
            message = f"Model '{name}' is not loaded."
        else:
            message = f"Version {version} of model '{name}' is not loaded."
        super().__init__(message)


class AuthenticationError(ServiceError):
    """Raised when an admin request's bearer token is missing or does not match."""

    def __init__(self) -> None:
        super().__init__("A valid 'Authorization: Bearer <token>' header is required.")


class ForbiddenError(ServiceError):
    """Raised for admin requests while no admin token is configured (the routes are off)."""

    def __init__(self) -> None:
        super().__init__(
            "The model repository API is disabled; set PREDICTION_ADMIN_TOKEN to enable it."
        )


class UnavailableError(ServiceError):
    """Base of the errors that tell the client to retry later."""

    retry_after_s: int = 1


class OverloadedError(UnavailableError):
    """Raised at once when admitting a request would overfill the batch queue."""

    def __init__(self, queued_rows: int, max_queue_rows: int) -> None:
        super().__init__(
            f"The server is overloaded ({queued_rows} of {max_queue_rows} queued rows); "
            "retry later."
        )


class ShuttingDownError(UnavailableError):
    """Raised for requests that arrive while the server is draining or not yet ready."""

    def __init__(
        self, message: str = "The server is shutting down; retry on another instance."
    ) -> None:
        super().__init__(message)


class DeadlineExceededError(ServiceError):
    """Raised when a request's deadline passes before its result is ready."""

    def __init__(self, timeout_ms: float | None = None) -> None:
        if timeout_ms is None:
            message = "The request's deadline passed before it could be served."
        else:
            message = (
                f"The request's deadline of {timeout_ms:g} ms passed before it could be served."
            )
        super().__init__(message)


class PredictionError(ServiceError):
    """Raised when the model failed for a reason that is not the client's input."""

    def __init__(self, message: str = "The model failed to produce a prediction.") -> None:
        super().__init__(message)
