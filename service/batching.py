"""Dynamic micro-batching: one model call, off the event loop, for many concurrent requests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
import operator
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from service.errors import DeadlineExceededError
from service.errors import ModelInputError
from service.errors import OverloadedError
from service.errors import PredictionError
from service.errors import ServiceError
from service.errors import ShuttingDownError
from service.errors import UnavailableError
from service.rowqueue import Batch
from service.rowqueue import Request
from service.rowqueue import RowQueue

if TYPE_CHECKING:  # only a process that traces imports OpenTelemetry (service.tracing)
    from service.tracing import BatchTracer
    from service.tracing import RequestSpan

__all__ = ["BatchObserver", "MicroBatcher", "Outcome", "PredictFn"]

logger = logging.getLogger(__name__)

Outcome = Literal["ok", "invalid", "rejected", "timeout", "error"]
"""How a submitted request ended, as ``prediction_requests_total`` counts it."""

PredictFn = Callable[[NDArray[Any]], NDArray[Any]]
"""A blocking model call (``predict`` or ``predict_proba``): one output row per input row."""


class BatchObserver(Protocol):
    """What a batcher reports; ``service.metrics`` implements it with the labels bound per batcher.

    Every method is called on the event loop's thread and must return quickly and never raise.
    """

    def queue_depth(self, rows: int) -> None:
        """Called after every change of the number of queued rows."""

    def batch_started(self, rows: int, queue_wait_s: Sequence[float]) -> None:
        """Called when a batch is dispatched, with each request's enqueue-to-dispatch wait."""

    def batch_finished(self, rows: int, model_s: float, *, ok: bool) -> None:
        """Called after every model call, including the re-runs of single requests."""

    def request_finished(self, outcome: Outcome) -> None:
        """Called once per submitted request that got an answer or an error (not cancellations)."""


class _NullObserver:
    """Reports nothing, so the hot path calls its observer without checking for ``None``."""

    def queue_depth(self, rows: int) -> None:
        pass

    def batch_started(self, rows: int, queue_wait_s: Sequence[float]) -> None:
        pass

    def batch_finished(self, rows: int, model_s: float, *, ok: bool) -> None:
        pass

    def request_finished(self, outcome: Outcome) -> None:
        pass


class _WrongRowCountError(Exception):
    """The model answered a different number of rows than it was given."""


class MicroBatcher:
    """Coalesces concurrent requests' rows into batched model calls run off the event loop.

    Dispatch policy. Rows, not requests, are counted:

    - While fewer than ``max_concurrent_batches`` batches run, queued rows are dispatched as soon
      as ``max_batch_rows`` rows are queued or the oldest queued row has waited ``max_wait_s``,
      whichever comes first. That wait is one deadline, ``enqueued_at + max_wait_s`` on the loop's
      monotonic clock, timed by the injected ``sleep``. With ``max_wait_s == 0`` (the default) rows
      dispatch at once: no timer, no added latency.
    - While every slot is busy, arrivals queue; the end of a batch starts the next one.
    - A batch takes up to ``max_batch_rows`` rows from the head of the queue in FIFO order. A
      request with more rows runs as consecutive chunks, possibly sharing batches with other
      requests, and is answered once every chunk is, in row order.
    - The batch's rows are concatenated and ``predict`` is called once, in ``executor``; the output
      is split back by row offsets. A batch of at most ``inline_max_rows`` rows calls ``predict``
      on the loop's thread instead: for a model measured to answer such a batch within the
      loop's stall budget (``service.engines.inline``), and only for one that cannot block.
      If the output has the wrong number of rows, every request of the batch fails with
      `PredictionError`. If the call raises, each request of the batch is
      re-run alone so that only the offending one fails: `ModelInputError` when the model raised
      ``ValueError``/``TypeError``, else `PredictionError`.
    - Admission is bounded: a submit that would queue more than ``max_queue_rows`` rows fails at
      once with `OverloadedError`.
    - A request still queued at its deadline leaves the queue and its rows never reach the model;
      one whose batch is already running is answered `DeadlineExceededError` at its deadline all
      the same. A caller that is cancelled (client gone) leaves the queue too. When every request
      of a running batch has given up, its slot is freed and the model call is abandoned to finish
      in its thread, so a hung model cannot block later batches.

    Every method must be called from the event loop that ran `start`.
    """

    def __init__(
        self,
        predict: PredictFn,
        *,
        max_batch_rows: int,
        max_queue_rows: int,
        max_wait_s: float = 0.0,
        max_concurrent_batches: int = 1,
        inline_max_rows: int = 0,
        observer: BatchObserver | None = None,
        tracer: BatchTracer | None = None,
        executor: concurrent.futures.Executor | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        name: str = "batcher",
    ) -> None:
        """Create a batcher; `start` must be called before `submit`.

        Args:
            predict: The blocking model call; run in ``executor``, one call per batch.
            max_batch_rows: At most this many rows go into one model call.
            max_queue_rows: At most this many rows wait in the queue; more are refused.
            max_wait_s: How long a batch may wait for more rows after its oldest row arrived.
            max_concurrent_batches: How many model calls may run at the same time.
            inline_max_rows: Batches of at most this many rows call ``predict`` on the loop's
                thread, not in ``executor``; 0 (the default) for none.
            observer: Receives queue, batch and outcome reports (metrics); ``None`` for none.
            tracer: Makes the queue-wait and model-call spans of traced requests; ``None``
                when tracing is off, which leaves every path as if tracing did not exist.
            executor: Where ``predict`` runs; ``None`` for the loop's default executor.
            sleep: Sleeps for ``max_wait_s`` timers (tests inject one they control).
            name: Names this batcher in logs and task names.

        Raises:
            ValueError: A setting is out of range.
        """
        _check_positive("max_batch_rows", max_batch_rows)
        _check_positive("max_queue_rows", max_queue_rows)
        _check_positive("max_concurrent_batches", max_concurrent_batches)
        if inline_max_rows < 0:
            raise ValueError(f"inline_max_rows must be >= 0, got {inline_max_rows!r}.")
        if max_queue_rows < max_batch_rows:
            raise ValueError(
                f"max_queue_rows ({max_queue_rows}) must be at least max_batch_rows "
                f"({max_batch_rows}), or no batch could ever fill."
            )
        if not (math.isfinite(max_wait_s) and max_wait_s >= 0):
            raise ValueError(f"max_wait_s must be a finite number >= 0, got {max_wait_s!r}.")
        self._predict = predict
        self._max_batch_rows = max_batch_rows
        self._max_queue_rows = max_queue_rows
        self._max_wait_s = max_wait_s
        self._max_concurrent = max_concurrent_batches
        self._inline_max_rows = inline_max_rows
        self._observer: BatchObserver = _NullObserver() if observer is None else observer
        self._tracer = tracer
        self._executor = executor
        self._sleep = sleep
        self._name = name

        self._loop: asyncio.AbstractEventLoop  # set by start()
        self._dispatcher: asyncio.Task[None] | None = None
        self._queue = RowQueue(self._observer.queue_depth)
        self._running: dict[Batch, asyncio.Task[None]] = {}
        # Set whenever the dispatcher may have something to do; it clears it before looking.
        self._wakeup = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._flush_due = False
        self._closing = False
        self._stopped = asyncio.Event()

    @property
    def queued_rows(self) -> int:
        """Rows waiting to be taken into a batch."""
        return self._queue.rows

    @property
    def running_batches(self) -> int:
        """Model calls in flight (abandoned ones not counted)."""
        return len(self._running)

    @property
    def closed(self) -> bool:
        """Whether `aclose` was called: intake has stopped."""
        return self._closing

    def start(self) -> None:
        """Start the dispatch task in the running event loop.

        Raises:
            RuntimeError: No loop is running, or the batcher was already started or closed.
        """
        if self._closing:
            raise RuntimeError(f"{self._name} is closed; create a new batcher.")
        if self._dispatcher is not None:
            raise RuntimeError(f"{self._name} is already started.")
        self._loop = asyncio.get_running_loop()
        self._dispatcher = self._loop.create_task(
            self._dispatch_forever(), name=f"{self._name}-dispatch"
        )

    async def submit(
        self,
        rows: NDArray[Any],
        *,
        timeout_s: float | None = None,
        span: RequestSpan | None = None,
    ) -> NDArray[Any]:
        """Queue ``rows`` for batching and return the model's output for them, in row order.

        Args:
            rows: A 2-D array with at least one row.
            timeout_s: Seconds from now after which the caller stops waiting; ``None`` for never.
            span: The server span of the HTTP request, when tracing: its rows' queue wait
                becomes a child span, and the model calls that run them link to it.

        Returns:
            The model's output rows for ``rows`` (1-D or 2-D, as the model returns them).

        Raises:
            ValueError: ``rows`` is not a 2-D array with at least one row.
            ShuttingDownError: The batcher is not started yet, or closing.
            OverloadedError: Queuing ``rows`` would exceed ``max_queue_rows``.
            DeadlineExceededError: ``timeout_s`` passed before the output was ready.
            ModelInputError: The model rejected these rows (``ValueError``/``TypeError``).
            PredictionError: The model failed otherwise, or answered the wrong number of rows.
        """
        if rows.ndim != 2 or rows.shape[0] == 0:
            raise ValueError(f"rows must be a 2-D array with at least one row, got {rows.shape}.")
        if self._closing or self._dispatcher is None:
            self._observer.request_finished("rejected")
            if self._closing:
                raise ShuttingDownError()
            raise ShuttingDownError("The model is not ready to serve yet; retry later.")
        n_rows = rows.shape[0]
        if self._queue.rows + n_rows > self._max_queue_rows:
            self._observer.request_finished("rejected")
            raise OverloadedError(self._queue.rows, self._max_queue_rows)
        now = self._loop.time()
        deadline = timeout_ms = None
        if timeout_s is not None:
            timeout_ms = timeout_s * 1000
            if timeout_s <= 0:
                # Already late: queuing it would only let the model see rows nobody awaits.
                self._observer.request_finished("timeout")
                raise DeadlineExceededError(timeout_ms)
            deadline = now + timeout_s

        request = Request(rows, self._loop.create_future(), now, deadline)
        if span is not None and self._tracer is not None:
            request.span = span
            request.queue_span = self._tracer.queued(span, n_rows)
        self._enqueue(request)
        # A timer on the loop clock, independent of the dispatcher: the caller gets its answer
        # at the deadline even while the model is busy with another long batch. A bare timer
        # handle that fails the future costs 0.9 us where an asyncio.timeout_at() block costs
        # 2.8 (uvloop, in a loop of its own); under load the block was 7-10% of the prediction
        # path's samples.
        timer = None if deadline is None else self._loop.call_at(deadline, _expire, request.future)
        try:
            result = await request.future
        except asyncio.CancelledError:
            if request.future.done() and not request.future.cancelled():
                request.future.exception()  # expired as the caller went: nobody reads it
            self._give_up(request, "cancelled")
            raise
        except TimeoutError:
            self._give_up(request, "timeout")
            self._observer.request_finished("timeout")
            raise DeadlineExceededError(timeout_ms) from None
        except ServiceError as error:
            # A failed chunk of an oversized request may leave its later chunks queued.
            self._queue.drop(request)
            self._left_queue(request, _outcome(error))
            self._observer.request_finished(_outcome(error))
            raise
        finally:
            if timer is not None:
                timer.cancel()
        self._observer.request_finished("ok")
        return result

    async def aclose(self, timeout_s: float | None = None) -> None:
        """Stop intake at once, let queued and running work finish, then stop.

        Whatever is still queued or running after ``timeout_s`` fails with `ShuttingDownError`;
        running model calls are abandoned to finish in their threads. Calling it again waits for
        the first call to finish.

        Args:
            timeout_s: How long to let the work drain; ``None`` to wait for all of it.
        """
        if self._closing:
            await self._stopped.wait()
            return
        self._closing = True
        try:
            if self._dispatcher is not None:
                self._wakeup.set()
                # The dispatcher returns once the queue is empty and nothing runs. asyncio.wait
                # neither raises nor cancels on timeout: _stop() deals with what is left.
                await asyncio.wait([self._dispatcher], timeout=timeout_s)
        finally:
            tasks = self._stop()
            self._stopped.set()
        if tasks:  # let the cancelled tasks finish, so none is destroyed while pending
            await asyncio.wait(tasks)

    # -- intake ---------------------------------------------------------------------------------

    def _enqueue(self, request: Request) -> None:
        self._queue.enqueue(request)
        # Wake the dispatcher only when it can act on this arrival: when all slots are busy the
        # end of a batch wakes it, and while a max_wait_s timer runs only a full batch is news.
        # That keeps it to about one wake-up per batch.
        if len(self._running) < self._max_concurrent and (
            self._timer is None or self._queue.rows >= self._max_batch_rows
        ):
            self._wakeup.set()

    def _give_up(self, request: Request, outcome: str) -> None:
        """Forget a request whose caller stopped waiting (deadline or cancellation).

        Its future is done already (cancelling the task that awaited it cancelled it), so the
        dispatcher and the running batches skip it from now on.
        """
        self._queue.drop(request)
        self._left_queue(request, outcome)
        self._abandon_hung_batches()

    def _left_queue(self, request: Request, outcome: str) -> None:
        """End the queue-wait span of a request that left the queue without all its rows run."""
        if request.queue_span is not None and self._tracer is not None:
            self._tracer.dequeued(request.queue_span, outcome)
            request.queue_span = None

    def _abandon_hung_batches(self) -> None:
        """Free the slots of running batches that nobody waits for any more."""
        for batch, task in list(self._running.items()):
            if all(request.future.done() for request, _, _ in batch.slices):
                logger.warning(
                    "%s: every request of a running %d-row batch gave up; abandoning its model "
                    "call, which finishes in the background with its result discarded.",
                    self._name,
                    batch.rows,
                )
                del self._running[batch]
                task.cancel()
                self._wakeup.set()

    # -- dispatch -------------------------------------------------------------------------------

    async def _dispatch_forever(self) -> None:
        """Form and start batches by the class's policy until closed and drained."""
        while True:
            self._wakeup.clear()
            if len(self._running) < self._max_concurrent:
                now = self._loop.time()
                head = self._queue.live_head(now)
                if head is None:
                    self._reset_timer()
                    if self._closing and not self._running:
                        return
                elif self._batch_due(head, now):
                    self._dispatch(now)
                    continue
                elif self._timer is None:
                    delay = head.enqueued_at + self._max_wait_s - now
                    self._timer = self._loop.create_task(
                        self._flush_after(delay), name=f"{self._name}-max-wait"
                    )
            await self._wakeup.wait()

    def _batch_due(self, head: Request, now: float) -> bool:
        # With max_wait_s == 0 the last test always holds: no timer, no added latency. Closing
        # means no more rows will come, so waiting for them is pointless.
        return (
            self._closing
            or self._flush_due
            or self._queue.rows >= self._max_batch_rows
            or head.enqueued_at + self._max_wait_s <= now
        )

    async def _flush_after(self, delay: float) -> None:
        await self._sleep(delay)
        self._flush_due = True
        self._wakeup.set()

    def _reset_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._flush_due = False

    def _dispatch(self, now: float) -> None:
        self._reset_timer()
        batch = self._queue.take_batch(now, self._max_batch_rows)
        if self._tracer is not None:
            self._end_queue_waits(batch, self._tracer)
        self._observer.batch_started(
            batch.rows, [now - request.enqueued_at for request, _, _ in batch.slices]
        )
        task = self._loop.create_task(self._run_batch(batch), name=f"{self._name}-batch")
        # An eager task factory (Python 3.12+) may have run an inline batch to its end already.
        if not task.done():
            self._running[batch] = task

    def _end_queue_waits(self, batch: Batch, tracer: BatchTracer) -> None:
        """End the queue-wait spans of the requests whose last rows this batch took."""
        for request, _, _ in batch.slices:
            if request.queue_span is not None and not request.queued:
                tracer.dequeued(request.queue_span)
                request.queue_span = None

    # -- running a batch ------------------------------------------------------------------------

    async def _run_batch(self, batch: Batch) -> None:
        try:
            await self._complete(batch)
        except asyncio.CancelledError:
            raise  # abandoned, or closing: its callers are answered elsewhere
        except Exception:
            # A bug (or an observer that raised): answer the callers rather than leave them hanging.
            logger.exception("%s: unexpected error while running a batch", self._name)
            self._fail_all(batch, PredictionError)
        finally:
            # A freed slot is news to the dispatcher only if rows wait (or it is draining): an
            # arrival finds the slot free and wakes it itself.
            if self._running.pop(batch, None) is not None and (self._queue or self._closing):
                self._wakeup.set()

    async def _complete(self, batch: Batch) -> None:
        result = await self._call(batch.parts, batch.rows, batch.slices)
        if isinstance(result, np.ndarray):
            offset = 0
            for request, start, stop in batch.slices:
                self._answer(request, start, result[offset : offset + stop - start])
                offset += stop - start
        elif isinstance(result, _WrongRowCountError) or len(batch.slices) == 1:
            self._fail_all(batch, self._client_error(result))
        else:
            logger.debug(
                "%s: a %d-request batch raised; re-running each request alone",
                self._name,
                len(batch.slices),
                exc_info=result,
            )
            await self._rerun_alone(batch)

    async def _rerun_alone(self, batch: Batch) -> None:
        """Re-run each request's slice alone, so only a request that makes the model raise fails."""
        for (request, start, stop), part in zip(batch.slices, batch.parts, strict=True):
            if request.future.done():  # gave up meanwhile: spend no model time on it
                continue
            result = await self._call([part], stop - start, [(request, start, stop)])
            if isinstance(result, np.ndarray):
                self._answer(request, start, result)
            else:
                self._fail(request, self._client_error(result)())

    async def _call_model(self, parts: list[NDArray[Any]], rows: int) -> NDArray[Any] | Exception:
        """Run the model on ``parts``; return its checked output or its error."""
        started_at = self._loop.time()
        if rows <= self._inline_max_rows:
            output = self._predict_rows(parts)
        else:
            output = await self._loop.run_in_executor(self._executor, self._predict_rows, parts)
        if isinstance(output, Exception):
            self._observer.batch_finished(rows, self._loop.time() - started_at, ok=False)
            return output
        ok = output.ndim > 0 and len(output) == rows
        self._observer.batch_finished(rows, self._loop.time() - started_at, ok=ok)
        if ok:
            return output
        # Never guess which output row belongs to which request.
        logger.error(
            "%s: the model returned shape %s for %d input rows", self._name, output.shape, rows
        )
        return _WrongRowCountError()

    async def _call(
        self, parts: list[NDArray[Any]], rows: int, slices: Sequence[tuple[Request, int, int]]
    ) -> NDArray[Any] | Exception:
        """`_call_model`, with tracing inside a model-call span linked to the traced requests
        it serves."""
        tracer = self._tracer
        if tracer is None:
            return await self._call_model(parts, rows)
        served = [(request.span, stop - start) for request, start, stop in slices if request.span]
        if not served:  # rows submitted without a request span: nothing to link to
            return await self._call_model(parts, rows)
        span = tracer.model_call(served, rows, inline=rows <= self._inline_max_rows)
        result: NDArray[Any] | Exception | None = None
        try:
            result = await self._call_model(parts, rows)
        finally:
            # Abandoned or cancelled at close: the call's outcome is unknown.
            error = result if isinstance(result, Exception) else None
            tracer.model_returned(span, asyncio.CancelledError() if result is None else error)
        return result

    def _predict_rows(self, parts: list[NDArray[Any]]) -> NDArray[Any] | Exception:
        """Run in a worker thread (or inline): the batch's one concatenate, then the model call.

        The model's exception is returned rather than raised: it is an outcome to route to the
        batch's callers, not a failure of the batcher.
        """
        try:
            rows = parts[0] if len(parts) == 1 else np.concatenate(parts)
            return np.asarray(self._predict(rows))
        except Exception as error:
            return error

    def _client_error(self, error: Exception) -> Callable[[], ServiceError]:
        """Map a failed model call to a factory of client errors (one instance per future)."""
        if isinstance(error, ValueError | TypeError):
            return functools.partial(ModelInputError, error)
        if not isinstance(error, _WrongRowCountError):  # that one is logged where detected
            # The traceback goes to the log only; clients get PredictionError's generic message.
            logger.error("%s: the model failed", self._name, exc_info=error)
        return PredictionError

    # -- answering ------------------------------------------------------------------------------

    def _answer(self, request: Request, start: int, output: NDArray[Any]) -> None:
        future = request.future
        # A caller that gave up left a cancelled future; resolving it would raise.
        if future.done():
            return
        total = len(request.rows)
        if len(output) == total:
            future.set_result(output)
            return
        # A chunk of an oversized request: concurrent batches may finish out of order.
        request.chunks.append((start, output))
        request.answered += len(output)
        if request.answered == total:
            request.chunks.sort(key=operator.itemgetter(0))
            future.set_result(np.concatenate([chunk for _, chunk in request.chunks]))

    def _fail(self, request: Request, error: ServiceError) -> None:
        # As in _answer: a caller that gave up left a cancelled future.
        if not request.future.done():
            request.future.set_exception(error)

    def _fail_all(self, batch: Batch, error: Callable[[], ServiceError]) -> None:
        for request, _, _ in batch.slices:
            if not request.future.done():
                request.future.set_exception(error())

    # -- closing --------------------------------------------------------------------------------

    def _stop(self) -> list[asyncio.Task[None]]:
        """Fail what is queued or running with ShuttingDownError; cancel and return the tasks."""
        tasks = [*self._running.values()]
        if tasks:
            logger.warning(
                "%s: abandoning %d running batch(es) at close; their callers get a 503.",
                self._name,
                len(tasks),
            )
        unanswered = self._queue.clear()
        for batch in self._running:
            unanswered += [request for request, _, _ in batch.slices]
        self._running.clear()
        for request in unanswered:  # a request may be both running (a chunk) and queued
            self._fail(request, ShuttingDownError())
        self._reset_timer()
        if self._dispatcher is not None:
            tasks.append(self._dispatcher)
        for task in tasks:
            task.cancel()
        return tasks


def _check_positive(setting: str, value: int) -> None:
    if value < 1:
        raise ValueError(f"{setting} must be a positive integer, got {value!r}.")


def _expire(future: asyncio.Future[Any]) -> None:
    """A request's deadline passed: its caller stops waiting (unless its answer came first)."""
    if not future.done():
        future.set_exception(TimeoutError())


def _outcome(error: ServiceError) -> Outcome:
    """The outcome of an error set on a request's future (timeouts and refusals never are)."""
    if isinstance(error, ModelInputError):
        return "invalid"
    if isinstance(error, UnavailableError):  # ShuttingDownError at close
        return "rejected"
    return "error"
