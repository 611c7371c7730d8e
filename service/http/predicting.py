"""What every prediction route shares: model resolution from the request, deadlines, headers."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from quart import request

from service.errors import InvalidInputError
from service.errors import ServiceError
from service.metrics import Metrics
from service.models import ServedVersion
from service.settings import Settings
from service.store import Manifest

__all__ = [
    "TIMEOUT_HEADER",
    "count_invalid",
    "model_headers",
    "parse_version",
    "request_timeout_s",
]

TIMEOUT_HEADER = "X-Request-Timeout-Ms"


def parse_version(raw: str | None) -> int | None:
    """A version from a query parameter or path segment; None when absent.

    Raises:
        InvalidInputError: not a positive integer.
    """
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise InvalidInputError(f"Version must be a positive integer, got {raw[:20]!r}.")
    return int(raw)


def request_timeout_s(settings: Settings) -> float:
    """This request's deadline in seconds: the setting, shortened (never lengthened) by header.

    Raises:
        InvalidInputError: the header is not a positive number of milliseconds.
    """
    timeout_ms = settings.request_timeout_ms
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is not None:
        try:
            asked_ms = float(raw)
        except ValueError:
            asked_ms = math.nan
        if not (math.isfinite(asked_ms) and asked_ms > 0):
            raise InvalidInputError(
                f"{TIMEOUT_HEADER} must be a positive number of milliseconds, got {raw[:20]!r}."
            )
        timeout_ms = min(timeout_ms, asked_ms)
    return timeout_ms / 1000


def model_headers(served: ServedVersion) -> dict[str, str]:
    """The headers that name the model version that answered."""
    return {"X-Model-Name": served.name, "X-Model-Version": str(served.version)}


@contextmanager
def count_invalid(metrics: Metrics, manifest: Manifest) -> Iterator[None]:
    """Count requests for ``manifest`` that fail before reaching a batcher as ``invalid``."""
    try:
        yield
    except ServiceError:
        metrics.record_outcome(manifest, "invalid")
        raise
