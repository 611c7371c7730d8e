"""The prediction routes' POSTs, served as plain ASGI in front of Quart's dispatch.

A prediction request is the product's hot path: a small JSON body in, a small JSON body out, a
few hundred microseconds of model time or less. Quart's per-request machinery (a request
object with werkzeug headers, a request context, URL routing, before/after hooks, a task that
reads the body beside the task that runs the view, ``wait_for`` timers) cost about as much CPU
as everything else together. :class:`PredictionPath` wraps the Quart app's ``asgi_app`` (Flask's
middleware idiom) and serves ``POST`` to

- ``/predict`` and ``/predict_proba``,
- ``/v2/models/<name>/infer`` and ``/v2/models/<name>/versions/<version>/infer``,
- ``/v1/models/<name>:predict``

itself, when the request states its Content-Length (nearly every client does). Everything else
(other methods and paths, chunked bodies, an ASGI ``root_path``, lifespan) goes to Quart
unchanged, and Quart serves those same routes through the same route functions.

What a request gets is the Quart views': the route functions (``flask_routes.answer``,
``v2.infer_answer``, ``v1.predict_answer``), the one error table (``errors.answer_for``), an
:class:`~service.http.exchange.Exchange` for the metrics and the access log, ``X-Request-ID``,
the body size limit (413 and ``Connection: close``) and time-out (408), compressed bodies both
ways (``service.http.encoding``), a client that hangs up cancels its request, which leaves the
batch queue, as Quart's cancellation does (noticed from :data:`WATCH_AFTER_S` after its body
arrived), and with tracing on the server span and the response's ``traceparent``.

Threads: everything here runs on the event loop's thread.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Final
from urllib.parse import parse_qsl

from hypercorn.typing import ASGIFramework
from hypercorn.typing import ASGIReceiveCallable
from hypercorn.typing import ASGISendCallable
from hypercorn.typing import Scope
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.exceptions import RequestTimeout

from service.http import flask_routes
from service.http import v1
from service.http import v2
from service.http.encoding import compress
from service.http.encoding import response_coding
from service.http.errors import answer_for
from service.http.exchange import Exchange
from service.http.exchange import finish
from service.http.exchange import request_id_from
from service.http.responses import JSON_MIMETYPE
from service.http.responses import Answer
from service.http.state import AppState
from service.store import Output

__all__ = ["WATCH_AFTER_S", "PredictionPath"]

WATCH_AFTER_S: Final = 0.05
"""How long after its body arrived a request starts watching for its client hanging up.

Watching takes a task that waits on ``receive()``, and starting then cancelling one per request
cost ~16 us of CPU per request at 64 connections (the bench's LogisticRegression: 289 us with
it, 273 without). Nearly every request is answered well within this, so only the ones that
wait longer (a deep queue, a slow model) pay for it, and those are the ones worth dropping when
their client has gone.
"""

Params = tuple[str, ...]
"""A route's path parameters, in the order its template names them."""
RouteFn = Callable[[AppState, Exchange, Params], Awaitable[Answer]]
"""Answers one request of a route, given its path parameters."""


@dataclass(frozen=True, slots=True)
class _Route:
    template: str
    """As Quart's URL map spells it: the ``route`` label of the metrics and the access log."""
    pattern: re.Pattern[str]
    answer: RouteFn


def _flask(output: Output) -> RouteFn:
    def answer(state: AppState, exchange: Exchange, _: Params) -> Awaitable[Answer]:
        return flask_routes.answer(state, exchange, output)

    return answer


def _v2_infer(state: AppState, exchange: Exchange, params: Params) -> Awaitable[Answer]:
    return v2.infer_answer(state, exchange, params[0], None)


def _v2_infer_version(state: AppState, exchange: Exchange, params: Params) -> Awaitable[Answer]:
    return v2.infer_answer(state, exchange, params[0], params[1])


def _v1_predict(state: AppState, exchange: Exchange, params: Params) -> Awaitable[Answer]:
    return v1.predict_answer(state, exchange, params[0])


# Werkzeug's default converter matches [^/]+, and its rules match the whole path: fullmatch.
_ROUTES = (
    _Route("/predict", re.compile(r"/predict"), _flask("predict")),
    _Route("/predict_proba", re.compile(r"/predict_proba"), _flask("predict_proba")),
    _Route("/v2/models/<name>/infer", re.compile(r"/v2/models/([^/]+)/infer"), _v2_infer),
    _Route(
        "/v2/models/<name>/versions/<version>/infer",
        re.compile(r"/v2/models/([^/]+)/versions/([^/]+)/infer"),
        _v2_infer_version,
    ),
    _Route("/v1/models/<name>:predict", re.compile(r"/v1/models/([^/]+):predict"), _v1_predict),
)
_JSON_TYPE = JSON_MIMETYPE.encode()
# Whether a response is compressed depends on Accept-Encoding (RFC 9110 §12.5.5).
_VARY = (b"vary", b"Accept-Encoding")
_EXACT = {route.template: route for route in _ROUTES if "<" not in route.template}
_PATTERNED = tuple(route for route in _ROUTES if "<" in route.template)


class _DisconnectedError(Exception):
    """The client hung up before its body arrived."""


class _Inbound:
    """Reads one request's body, then watches for the client hanging up while it is served."""

    __slots__ = (
        "_body_timeout_s",
        "_late",
        "_length",
        "_max_bytes",
        "_receive",
        "_task",
        "_watch_timer",
        "_watcher",
        "gone",
    )

    def __init__(
        self, receive: ASGIReceiveCallable, length: int, max_bytes: int, body_timeout_s: float
    ) -> None:
        self._receive = receive
        self._length = length
        self._max_bytes = max_bytes
        self._body_timeout_s = body_timeout_s
        self._task: asyncio.Task[Any] | None = None
        self._watch_timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._late = False
        self.gone = False
        """Set when the client hung up while its request was served: the task was cancelled."""

    async def read_body(self) -> bytes:
        """The whole body; from :data:`WATCH_AFTER_S` on, a hang-up cancels the request's task.

        Raises:
            RequestEntityTooLarge: the stated length is over the limit (the body stays unread).
            RequestTimeout: the body did not arrive within the body time-out.
        """
        if self._length > self._max_bytes:
            raise RequestEntityTooLarge()
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        # A bare timer handle, not asyncio.timeout(): the body is nearly always queued already,
        # and the context manager cost 2.6% of a worker's samples under load.
        timer = loop.call_later(self._body_timeout_s, self._body_late)
        chunks: list[bytes] = []
        try:
            while True:
                message = await self._receive()
                if message["type"] == "http.disconnect":
                    raise _DisconnectedError()
                chunks.append(message.get("body", b""))  # type: ignore[arg-type]
                if not message.get("more_body", False):
                    break
        except asyncio.CancelledError:
            if not self._late:
                raise
            self._task.uncancel()  # type: ignore[union-attr]
            raise RequestTimeout() from None
        finally:
            timer.cancel()
        self._watch_timer = loop.call_later(WATCH_AFTER_S, self._start_watching)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _body_late(self) -> None:
        self._late = True
        if self._task is not None:
            self._task.cancel()

    def _start_watching(self) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if self._task is not None:
            self._task.cancel()

    def stop_watching(self) -> None:
        if self._watch_timer is not None:
            self._watch_timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


class PredictionPath:
    """ASGI middleware: serves the prediction routes' POSTs, hands the rest to ``app``."""

    def __init__(self, app: ASGIFramework, state: AppState, *, body_timeout_s: float) -> None:
        self._app = app
        self._state = state
        self._max_body_bytes = state.settings.max_body_bytes
        self._gzip_min_bytes = state.settings.gzip_min_bytes
        self._body_timeout_s = body_timeout_s
        self._tracing = state.tracing

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            await self._app(scope, receive, send)
            return
        route, params = _match(scope["path"])
        headers = _headers(scope["headers"]) if route is not None else {}
        length = headers.get("content-length", "")
        if route is None or not length.isdigit():
            await self._app(scope, receive, send)
            return
        await self._serve(scope, receive, send, route, params, headers, int(length))

    async def _serve(
        self,
        scope: Scope,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
        route: _Route,
        params: Params,
        headers: dict[str, str],
        length: int,
    ) -> None:
        inbound = _Inbound(receive, length, self._max_body_bytes, self._body_timeout_s)
        query = scope["query_string"]  # type: ignore[typeddict-item]
        exchange = Exchange(
            method="POST",
            route=route.template,
            request_id=request_id_from(headers.get("x-request-id")),
            started_s=time.perf_counter(),
            headers=headers,
            query=_query(query) if query else {},
            read_body=inbound.read_body,
        )
        if self._tracing is not None:
            exchange.span = self._tracing.start_request(
                "POST",
                route.template,
                scope["path"],  # type: ignore[typeddict-item]
                headers,
                exchange.request_id,
            )
        try:
            answer = await route.answer(self._state, exchange, params)
        except _DisconnectedError:
            if exchange.span is not None:
                exchange.span.abandon()
            return  # as under Quart: nobody to answer, nothing counted
        except asyncio.CancelledError:
            if not inbound.gone:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            if exchange.span is not None:
                exchange.span.abandon()
            return
        except Exception as error:
            answer = answer_for(error)
        finally:
            inbound.stop_watching()
        finish(self._state, exchange, answer.status)
        body = answer.body
        content_type = (
            _JSON_TYPE if answer.content_type == JSON_MIMETYPE else answer.content_type.encode()
        )
        response_headers = [
            (b"content-type", content_type),
            *[(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers],
            (b"x-request-id", exchange.request_id.encode()),
        ]
        if exchange.span is not None:
            response_headers.append((b"traceparent", exchange.span.traceparent.encode()))
        min_bytes = self._gzip_min_bytes
        if min_bytes:
            response_headers.append(_VARY)
            coding = (
                response_coding(headers.get("accept-encoding")) if len(body) >= min_bytes else None
            )
            if coding is not None:
                body = compress(body, coding)
                response_headers.append((b"content-encoding", coding.encode()))
        response_headers.append((b"content-length", str(len(body)).encode()))
        await send(
            {"type": "http.response.start", "status": answer.status, "headers": response_headers}
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _match(path: str) -> tuple[_Route | None, Params]:
    route = _EXACT.get(path)
    if route is not None:
        return route, ()
    if path.startswith(("/v2/models/", "/v1/models/")):
        for route in _PATTERNED:
            found = route.pattern.fullmatch(path)
            if found is not None:
                return route, found.groups()
    return None, ()


def _headers(raw: Any) -> dict[str, str]:
    """The request's headers by lower-case name; the first of repeated ones, as werkzeug's get."""
    headers: dict[str, str] = {}
    for name, value in raw:
        headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _query(raw: bytes) -> dict[str, str]:
    """The query parameters; the first of repeated ones, as werkzeug's ``args.get``."""
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        query.setdefault(name, value)
    return query
