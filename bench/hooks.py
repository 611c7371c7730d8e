"""What tracing costs a request in-process: the app's prediction path with tracing off and on.

No sockets and no wrk: three apps are built as ``serve`` builds them (``create_app``) on one
model, and their ASGI prediction path is called directly with a single-row ``POST /predict``,
one request at a time, in interleaved blocks so that drift hits them alike:

- ``off``: tracing off, as shipped;
- ``off again``: a second, identical app: the gap between the two is the measurement's noise;
- ``on``: tracing on, every request sampled, the spans handed to a processor that drops them
  (what making the three spans costs; the bench's traced server row adds their export).

Tracing off still runs a few ``is None`` checks where tracing would start or end a span, and one
more ``await`` per model call. :func:`off_path_checks` runs those same checks on the real app's
objects (the request's exchange, the app's state) and is timed against :func:`no_checks`, the
same call without them: what tracing off costs over code with no tracing at all. It mirrors
``service/http/fastpath.py`` (start a span, send its ``traceparent``), ``exchange.finish`` (end
it, log its trace id) and ``service/batching.py`` (queue-wait span, and ``_call`` awaiting
``_call_model``); a new check on the untraced path belongs there too.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import statistics
import time
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import Final

if TYPE_CHECKING:  # the report imports TracingMicro; the apps are imported when measured
    from service.http.exchange import Exchange
    from service.http.state import AppState

__all__ = [
    "BLOCK_REQUESTS",
    "TracingMicro",
    "no_checks",
    "off_path_checks",
    "per_request_s",
    "tracing_micro",
]

# Requests per timed block; the blocks of the three apps alternate.
BLOCK_REQUESTS: Final = 50
MIN_BLOCKS: Final = 5
MAX_BLOCKS: Final = 400
# The checks are timed in loops of this many calls, so the clock's own cost is spread thin.
CHECK_LOOP: Final = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class TracingMicro:
    """Per-request seconds of the in-process prediction path, tracing off and on."""

    model: str
    blocks: int
    """Timed blocks of ``BLOCK_REQUESTS`` requests per app."""
    off_s: float
    """Median wall time per request, tracing off."""
    off_again_s: float
    """The same, of a second identical app (the gap to ``off_s`` is noise)."""
    on_s: float
    """Tracing on, every request sampled, spans dropped instead of exported."""
    off_cpu_s: float
    """Median process CPU time per request, tracing off."""
    on_cpu_s: float
    checks_s: float
    """Per request: the off path's tracing checks and extra ``await``, timed alone."""
    stub_s: float
    """Per request: the same call without them."""

    @property
    def off_overhead_s(self) -> float:
        """What tracing off adds to a request over code without tracing (never below 0)."""
        return max(self.checks_s - self.stub_s, 0.0)


async def _model_call() -> None:
    return None


async def off_path_checks(state: AppState, exchange: Exchange) -> None:
    """The checks a request meets with tracing off, on the real objects, then the extra await.

    With one request per batch, as at one connection, the per-batch checks count per request.
    """
    if state.tracing is not None:  # the prediction path: start a server span
        raise AssertionError("tracing is on")
    if exchange.span is not None:  # ... and send its traceparent
        raise AssertionError("traced")
    span = exchange.span
    if span is not None:  # finish(): end the span
        raise AssertionError("traced")
    if span is not None:  # ... and log its trace id
        raise AssertionError("traced")
    if exchange.span is not None:  # submit(): start the queue-wait span
        raise AssertionError("traced")
    if state.tracing is not None:  # the batch: end its queue waits
        raise AssertionError("tracing is on")
    if state.tracing is not None:  # ... and wrap the model call in a span,
        raise AssertionError("tracing is on")
    await _model_call()  # which _call awaits in _call_model


async def no_checks(state: AppState, exchange: Exchange) -> None:
    """:func:`off_path_checks` as code without tracing would run it: the call alone."""


def _run_sync(coroutine: Coroutine[Any, Any, None]) -> None:
    # Neither coroutine suspends, so one send() runs it to the end, with no event loop to time.
    try:
        coroutine.send(None)
    except StopIteration:
        return
    raise AssertionError("the coroutine suspended")


def per_request_s(
    check: Callable[[AppState, Exchange], Coroutine[Any, Any, None]],
    state: AppState,
    exchange: Exchange,
    *,
    loops: int = 5,
) -> float:
    """The median seconds of one ``check(state, exchange)``, over ``loops`` loops of
    ``CHECK_LOOP`` calls each."""
    times: list[float] = []
    for _ in range(loops):
        started = time.perf_counter()
        for _ in range(CHECK_LOOP):
            _run_sync(check(state, exchange))
        times.append((time.perf_counter() - started) / CHECK_LOOP)
    return statistics.median(times)


def _scope(model: str, length: int) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": f"model={model}".encode(),
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(length).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 5000),
    }


class _Client:
    """One in-process client: sends the body, then stays connected until answered."""

    def __init__(self, app: Any, model: str, body: bytes) -> None:
        self._app = app
        self._scope = _scope(model, len(body))
        self._body = {"type": "http.request", "body": body, "more_body": False}
        self._connected = asyncio.Event()  # never set: the client does not hang up
        self.statuses: list[int] = []

    async def request(self) -> None:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return self._body
            await self._connected.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])

        await self._app(self._scope, receive, send)


async def _block(request: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """Wall and CPU seconds per request over one block."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(BLOCK_REQUESTS):
        await request()
    return (
        (time.perf_counter() - wall) / BLOCK_REQUESTS,
        (time.process_time() - cpu) / BLOCK_REQUESTS,
    )


@contextmanager
def _quiet_service_logs() -> Iterator[None]:
    # The apps log their loading (joblib warnings included) through the service's loggers,
    # which the bench does not configure: without a handler, warnings would reach stderr.
    logger = logging.getLogger("service")
    handler = logging.NullHandler()
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


async def _measure(store_root: Path, model: str, body: bytes, budget_s: float) -> TracingMicro:
    from opentelemetry.sdk.trace import SpanProcessor

    from service.http import create_app
    from service.http.exchange import Exchange
    from service.http.exchange import request_id_from
    from service.http.state import get_state
    from service.settings import Settings
    from service.tracing import start_tracing

    settings = Settings.from_env(
        {"PREDICTION_MODEL_STORE": str(store_root), "PREDICTION_RELOAD_INTERVAL_S": "0"}
    )
    apps = {
        "off": create_app(settings),
        "off again": create_app(settings),
        # The SDK's base SpanProcessor does nothing with the spans it is handed.
        "on": create_app(settings, tracing=start_tracing(processors=[SpanProcessor()])),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}
    async with (
        apps["off"].test_app(),
        apps["off again"].test_app(),
        apps["on"].test_app(),
    ):
        clients = {name: _Client(app.asgi_app, model, body) for name, app in apps.items()}
        for client in clients.values():  # warm-up: first calls, caches, the inline decision
            for _ in range(BLOCK_REQUESTS):
                await client.request()
        started = time.perf_counter()
        while len(times["off"]) < MAX_BLOCKS and (
            len(times["off"]) < MIN_BLOCKS or time.perf_counter() - started < budget_s
        ):
            for name, client in clients.items():
                times[name].append(await _block(client.request))
        state = get_state(apps["off"])
        exchange = Exchange(
            method="POST",
            route="/predict",
            request_id=request_id_from(None),
            started_s=time.perf_counter(),
            headers={},
            query={},
        )
        checks_s = per_request_s(off_path_checks, state, exchange)
        stub_s = per_request_s(no_checks, state, exchange)
    failed = {name: c.statuses for name, c in clients.items() if set(c.statuses) != {200}}
    if failed:
        raise RuntimeError(f"in-process requests were not all answered 200: {failed}")

    def median(name: str, index: int) -> float:
        return statistics.median(block[index] for block in times[name])

    return TracingMicro(
        model=model,
        blocks=len(times["off"]),
        off_s=median("off", 0),
        off_again_s=median("off again", 0),
        on_s=median("on", 0),
        off_cpu_s=median("off", 1),
        on_cpu_s=median("on", 1),
        checks_s=checks_s,
        stub_s=stub_s,
    )


def tracing_micro(
    store_root: Path, model: str, body: bytes, *, budget_s: float, work_dir: Path
) -> TracingMicro:
    """Measure ``model`` of the store at ``store_root`` for about ``budget_s`` seconds.

    The apps serve a copy of that one model (in ``work_dir``), so they load nothing else.
    """
    own_store = work_dir / "tracing-store"
    shutil.copytree(store_root / model, own_store / model, dirs_exist_ok=True)
    with _quiet_service_logs():
        return asyncio.run(_measure(own_store, model, body, budget_s))
