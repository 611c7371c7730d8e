"""The ASGI prediction path's own duties: body limit and time-out, hang-ups, what goes to Quart.

Everything else it shares with Quart's views is tested through both layers (see conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from quart import Quart

from service.http import create_app
from service.http import fastpath
from service.http.fastpath import PredictionPath
from service.http.state import get_state
from service.settings import Settings

pytestmark = pytest.mark.integration

SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(name="app")
async def _app(settings: Settings) -> AsyncIterator[Quart]:
    app = create_app(settings)
    async with app.test_app():
        yield app


class Exchange:
    """One raw ASGI request: what the app received and sent."""

    def __init__(self, messages: list[dict[str, Any]], *, hang: bool = False) -> None:
        self._messages = messages
        self._hang = hang
        self.sent: list[dict[str, Any]] = []
        self.received = 0

    async def receive(self) -> dict[str, Any]:
        if self.received < len(self._messages):
            self.received += 1
            return self._messages[self.received - 1]
        if not self._hang:
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # a client that never sends the rest
        raise AssertionError("unreachable")

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        status: int = self.sent[0]["status"]
        return status

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> Any:
        return orjson.loads(b"".join(m.get("body", b"") for m in self.sent[1:]))


def scope(path: str, length: int | None, **extra: Any) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json")]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "query_string": b"",
        "headers": headers,
        "root_path": "",
        "http_version": "1.1",
        "scheme": "http",
        **extra,
    }


async def call(path: PredictionPath, request_scope: dict[str, Any], exchange: Exchange) -> None:
    # The fakes speak plain dicts; the middleware is typed with Hypercorn's ASGI event types.
    app: Any = path
    await app(request_scope, exchange.receive, exchange.send)


async def not_quart(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("the prediction path handed this request to Quart")


async def test_body_that_stops_arriving_is_answered_408(app: Quart) -> None:
    """A body that stalls past the body time-out gets 408 and the usual error shape."""
    path = PredictionPath(not_quart, get_state(app), body_timeout_s=0.05)
    exchange = Exchange([{"type": "http.request", "body": b'{"feat', "more_body": True}], hang=True)

    await call(path, scope("/predict", 100), exchange)

    assert (408, {"error": "The request body did not arrive in time."}) == (
        exchange.status,
        exchange.body,
    )


async def test_stated_length_over_the_limit_is_refused_unread(app: Quart) -> None:
    """Content-Length over the body limit: 413 with Connection: close, before any body is read."""
    path = PredictionPath(not_quart, get_state(app), body_timeout_s=60)
    exchange = Exchange([])

    await call(path, scope("/predict", 10**9), exchange)

    assert (413, b"close", 0) == (
        exchange.status,
        exchange.headers[b"connection"],
        exchange.received,
    )


async def test_client_gone_before_its_body_gets_nothing(app: Quart) -> None:
    """A hang-up while the body is read ends the request with nothing sent, as under Quart."""
    path = PredictionPath(not_quart, get_state(app), body_timeout_s=60)
    exchange = Exchange([{"type": "http.request", "body": b"{", "more_body": True}])

    await call(path, scope("/predict", 100), exchange)

    assert [] == exchange.sent


async def test_prediction_answered_with_request_id_and_model_headers(app: Quart) -> None:
    """A stated-length prediction is answered here, with the headers Quart's views send."""
    path = PredictionPath(not_quart, get_state(app), body_timeout_s=60)
    body = orjson.dumps({"features": [SETOSA]})
    exchange = Exchange([{"type": "http.request", "body": body, "more_body": False}], hang=True)

    await call(path, scope("/predict", len(body)), exchange)

    headers = exchange.headers
    assert (200, {"prediction": [0]}, b"iris", b"1", b"application/json") == (
        exchange.status,
        exchange.body,
        headers[b"x-model-name"],
        headers[b"x-model-version"],
        headers[b"content-type"],
    )
    assert len(headers[b"x-request-id"]) == 32


async def test_hang_up_is_not_watched_for_until_watch_after(
    app: Quart, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request answered within WATCH_AFTER_S of its body reads nothing more from the client."""
    monkeypatch.setattr(fastpath, "WATCH_AFTER_S", 3600.0)
    path = PredictionPath(not_quart, get_state(app), body_timeout_s=60)
    body = orjson.dumps({"features": [SETOSA]})
    # After the body, this client's receive() says it has gone.
    exchange = Exchange([{"type": "http.request", "body": body, "more_body": False}])

    await call(path, scope("/predict", len(body)), exchange)

    assert (200, {"prediction": [0]}, 1) == (exchange.status, exchange.body, exchange.received)


@pytest.mark.parametrize(
    ("request_scope"),
    [
        scope("/predict", None),
        scope("/predict", 10, method="GET"),
        scope("/predict/", 10),
        scope("/v2/models/iris/infer/extra", 10),
        scope("/predict", 10, root_path="/api"),
        {"type": "lifespan"},
    ],
    ids=["no length", "GET", "trailing slash", "unknown path", "root path", "lifespan"],
)
async def test_everything_else_goes_to_quart(app: Quart, request_scope: dict[str, Any]) -> None:
    """Requests without a stated length, other methods and paths, and lifespan reach Quart."""
    reached: list[dict[str, Any]] = []

    async def quart(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope)

    path = PredictionPath(quart, get_state(app), body_timeout_s=60)
    exchange = Exchange([])

    await call(path, request_scope, exchange)

    assert ([request_scope], [], 0) == (reached, exchange.sent, exchange.received)
