"""The micro-batcher's row queue: FIFO requests, counted in rows, taken in batches of rows.

`RowQueue` is synchronous bookkeeping and no scheduler: it never awaits, sleeps or wakes anybody;
`service.batching.MicroBatcher` decides when to take a batch and how to run it.

Thread ownership: a queue belongs to the event loop's thread only, the thread of the loop whose
futures its requests hold. It takes no lock; worker threads never touch it, they only read the
rows of a `Batch` already taken out of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from numpy.typing import NDArray

if TYPE_CHECKING:  # only a process that traces imports OpenTelemetry (service.tracing)
    from service.tracing import RequestSpan
    from service.tracing import Span

__all__ = ["Batch", "Request", "RowQueue"]


@dataclass(eq=False, slots=True)
class Request:
    """One submitted request; the future its caller awaits travels with its rows."""

    rows: NDArray[Any]
    """A 2-D array with at least one row."""
    future: asyncio.Future[NDArray[Any]]
    enqueued_at: float
    """``loop.time()`` at submit."""
    deadline: float | None
    """``loop.time()`` after which its caller stops waiting, or ``None``."""
    queued: int = 0
    """Rows not yet taken into a batch; the request is in the queue exactly while this is > 0.

    Only `RowQueue` writes it.
    """
    chunks: list[tuple[int, NDArray[Any]]] = field(default_factory=list)
    """Answered chunks of an oversized request, as ``(first row, output rows)``."""
    answered: int = 0
    """Rows of an oversized request answered so far."""
    span: RequestSpan | None = None
    """The server span of the HTTP request, when tracing; model-call spans link to it."""
    queue_span: Span | None = None
    """Its ``queue wait`` span while it is open (only the batcher writes it)."""

    def is_live(self, now: float) -> bool:
        """Whether its caller still waits at ``now``: future not done, deadline not passed."""
        return not self.future.done() and (self.deadline is None or now < self.deadline)


@dataclass(eq=False, slots=True)
class Batch:
    """Rows taken from the queue for one model call."""

    slices: list[tuple[Request, int, int]]
    """``(request, start, stop)`` in batch order: the request's rows ``start:stop``."""
    parts: list[NDArray[Any]]
    """The rows of each slice (views, not copies), to be concatenated in the worker thread."""
    rows: int


def _ignore_depth(rows: int) -> None:
    pass


class RowQueue:
    """Requests waiting for the model, oldest first, with the number of rows they still queue.

    ``on_depth`` is called with the number of queued rows after every change of it, and only
    then; it must return quickly and never raise.
    """

    def __init__(self, on_depth: Callable[[int], None] = _ignore_depth) -> None:
        """Create an empty queue that reports its depth to ``on_depth``."""
        self._requests: deque[Request] = deque()
        self._rows = 0
        self._on_depth = on_depth

    @property
    def rows(self) -> int:
        """Rows waiting to be taken into a batch."""
        return self._rows

    def __len__(self) -> int:
        """The number of requests with rows in the queue."""
        return len(self._requests)

    def __bool__(self) -> bool:
        """Whether any request has rows in the queue."""
        return bool(self._requests)

    def enqueue(self, request: Request) -> None:
        """Queue every row of ``request``, a request not queued yet, behind the others."""
        request.queued = len(request.rows)
        self._requests.append(request)
        self._rows += request.queued
        self._on_depth(self._rows)

    def drop(self, request: Request) -> None:
        """Take a request's remaining rows out of the queue, if it still has any there."""
        if request.queued:
            # O(queue length), but deadlines tend to expire in arrival order, near the head.
            self._requests.remove(request)
            self._forget(request)

    def live_head(self, now: float) -> Request | None:
        """Return the oldest request still worth running, dropping the ones that are not."""
        requests = self._requests
        while requests:
            request = requests[0]
            if request.is_live(now):
                return request
            # Its caller gave up, or is about to: its deadline passed, but the loop has not run
            # its timer yet. Either way its rows must cost no model time.
            requests.popleft()
            self._forget(request)
        return None

    def take_batch(self, now: float, max_rows: int) -> Batch:
        """Take up to ``max_rows`` rows of live requests from the head, in FIFO order.

        A request with more rows than fit leaves the rest queued, at the head, for the next take.
        A whole request goes into the batch as its own array, a chunk as a view of it.
        """
        slices: list[tuple[Request, int, int]] = []
        parts: list[NDArray[Any]] = []
        budget = max_rows
        while budget:
            request = self.live_head(now)
            if request is None:
                break
            total = len(request.rows)
            start = total - request.queued
            take = min(request.queued, budget)
            request.queued -= take
            self._rows -= take
            if not request.queued:
                self._requests.popleft()
            slices.append((request, start, start + take))
            # Whole requests go as they are and chunks as views: the concatenate in the worker
            # thread is the only copy.
            parts.append(request.rows if take == total else request.rows[start : start + take])
            budget -= take
        taken = max_rows - budget
        if taken:  # one report per take, however many requests it took rows from
            self._on_depth(self._rows)
        return Batch(slices, parts, taken)

    def clear(self) -> list[Request]:
        """Empty the queue; return the requests that had rows in it, oldest first."""
        requests = [*self._requests]
        for request in requests:
            request.queued = 0
        self._requests.clear()
        if self._rows:
            self._rows = 0
            self._on_depth(0)
        return requests

    def _forget(self, request: Request) -> None:
        """Uncount the rows of a request just taken out of the deque."""
        self._rows -= request.queued
        request.queued = 0
        self._on_depth(self._rows)
