"""What every prediction route shares: model resolution from the request, deadlines, headers."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from service.errors import InvalidInputError
from service.errors import ServiceError
from service.http.exchange import Exchange
from service.http.responses import Answer
from service.http.responses import json_answer
from service.http.state import AppState
from service.loading import ServedVersion
from service.settings import Settings
from service.store import Manifest

__all__ = [
    "TIMEOUT_HEADER",
    "model_headers",
    "model_ready_answer",
    "parse_version",
    "request_timeout_s",
    "resolve_and_parse",
]

TIMEOUT_HEADER = "X-Request-Timeout-Ms"
_TIMEOUT_KEY = TIMEOUT_HEADER.lower()

T = TypeVar("T")


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


def request_timeout_s(settings: Settings, exchange: Exchange) -> float:
    """This request's deadline in seconds: the setting, shortened (never lengthened) by header.

    Raises:
        InvalidInputError: the header is not a positive number of milliseconds.
    """
    raw = exchange.headers.get(_TIMEOUT_KEY)
    if raw is None:
        return settings.request_timeout_s
    try:
        asked_ms = float(raw)
    except ValueError:
        asked_ms = math.nan
    if not (math.isfinite(asked_ms) and asked_ms > 0):
        raise InvalidInputError(
            f"{TIMEOUT_HEADER} must be a positive number of milliseconds, got {raw[:20]!r}."
        )
    return min(settings.request_timeout_s, asked_ms / 1000)


def model_headers(served: ServedVersion) -> dict[str, str]:
    """The headers that name the model version that answered."""
    return {"X-Model-Name": served.name, "X-Model-Version": str(served.version)}


def model_ready_answer(state: AppState, name: str, version: int | None) -> Answer:
    """``{"name": ..., "ready": true}`` when the model (version) is served, as V1 and V2 answer.

    Raises:
        ModelNotFoundError: no such model or version (404 comes before 503).
        ShuttingDownError: draining, or no model loaded yet.
    """
    served = state.registry.resolve(name, version)
    state.require_ready()
    return json_answer({"name": served.name, "ready": True})


def resolve_and_parse(
    state: AppState,
    exchange: Exchange,
    name: str | None,
    version: int | None,
    parse: Callable[[Manifest], T],
) -> tuple[ServedVersion, T]:
    """Resolve the version a request asks for and ``parse`` its body for that version's model.

    Call it after the body is read and queue the parsed rows right after: nothing between here
    and the batcher's queue awaits, so a hot swap cannot retire the version in between. The
    version is recorded for the access log, and a parse failure counts as ``invalid``.

    Raises:
        ModelNotFoundError: no such model or version.
        ServiceError: whatever ``parse`` raises.
    """
    served = state.registry.resolve(name, version)
    exchange.served_by(served.name, served.version)
    try:
        parsed = parse(served.manifest)
    except ServiceError:
        state.metrics.record_outcome(served.manifest, "invalid")
        raise
    return served, parsed
