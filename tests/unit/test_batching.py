"""MicroBatcher: coalescing, splitting, timing policy, errors, deadlines, cancellation, closing.

Nothing here waits on real time for synchronization: models block in their worker thread on a
``threading.Event`` the test releases, the ``max_wait_s`` timer runs on an injected sleep the test
releases, and a recording observer lets a test await a reported state. Real time appears only as
short request deadlines, and tests assert on outcomes and model calls, never on durations.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import threading
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from service.batching import MicroBatcher
from service.batching import Outcome
from service.batching import PredictFn
from service.errors import DeadlineExceededError
from service.errors import ModelInputError
from service.errors import OverloadedError
from service.errors import PredictionError
from service.errors import ShuttingDownError

FEATURES = 3
GUARD_S = 10.0
"""Bounds every wait for a signal, only so that a bug fails a test instead of hanging it."""
BAD_INPUT = -1.0
"""A feature value the picky model rejects with ValueError (the client's fault)."""
BROKEN = -2.0
"""A feature value that makes the picky model raise RuntimeError (the model's fault)."""


def make_rows(n_rows: int, seed: int) -> NDArray[np.float64]:
    """Distinct integer-valued rows, so sums are exact and a misplaced row shows."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 1000, size=(n_rows, FEATURES)).astype(np.float64)


def predict_sum(rows: NDArray[Any]) -> NDArray[Any]:
    """A predict-like model: one number per row."""
    sums: NDArray[Any] = rows.sum(axis=1)
    return sums


def predict_softmax(rows: NDArray[Any]) -> NDArray[Any]:
    """A predict_proba-like model: one probability row per row."""
    exp = np.exp(rows - rows.max(axis=1, keepdims=True))
    proba: NDArray[Any] = exp / exp.sum(axis=1, keepdims=True)
    return proba


def picky(rows: NDArray[Any]) -> NDArray[Any]:
    """Rejects rows holding BAD_INPUT and breaks on rows holding BROKEN."""
    if (rows == BAD_INPUT).any():
        raise ValueError("feature 0 must be positive\nsecond line never shown")
    if (rows == BROKEN).any():
        raise RuntimeError("the model's secret internals")
    return predict_sum(rows)


class FakeModel:
    """Records each call's input; its first ``gated`` calls block in their thread until released."""

    def __init__(self, predict: PredictFn, *, gated: int = 0) -> None:
        self._predict = predict
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._gates = [threading.Event() for _ in range(gated)]
        self._entered = [asyncio.Event() for _ in range(gated)]
        self.calls: list[NDArray[Any]] = []
        self.threads: list[str] = []

    def __call__(self, rows: NDArray[Any]) -> NDArray[Any]:
        with self._lock:
            index = len(self.calls)
            self.calls.append(rows.copy())
            self.threads.append(threading.current_thread().name)
        if index < len(self._gates):
            self._loop.call_soon_threadsafe(self._entered[index].set)
            self._gates[index].wait(timeout=3 * GUARD_S)
        return self._predict(rows)

    async def entered(self, call: int = 0) -> None:
        """Return once gated call number ``call`` is running in its thread."""
        async with asyncio.timeout(GUARD_S):
            await self._entered[call].wait()

    def release(self, call: int = 0) -> None:
        self._gates[call].set()

    def release_all(self) -> None:
        for gate in self._gates:
            gate.set()


class FakeSleep:
    """An injectable ``sleep`` that records its delays and returns only when released."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.finished = 0
        self._called = asyncio.Event()
        self._released = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self._called.set()
        await self._released.wait()
        self.finished += 1

    async def called(self) -> None:
        async with asyncio.timeout(GUARD_S):
            await self._called.wait()

    def release(self) -> None:
        self._released.set()


class RecordingObserver:
    """Records every report, and lets a test await a condition on the batcher's reported state."""

    def __init__(self) -> None:
        self.depths: list[int] = []
        self.started: list[tuple[int, list[float]]] = []
        self.finished: list[tuple[int, float, bool]] = []
        self.outcomes: list[Outcome] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Event]] = []

    def queue_depth(self, rows: int) -> None:
        self.depths.append(rows)
        self._notify()

    def batch_started(self, rows: int, queue_wait_s: Sequence[float]) -> None:
        self.started.append((rows, list(queue_wait_s)))
        self._notify()

    def batch_finished(self, rows: int, model_s: float, *, ok: bool) -> None:
        self.finished.append((rows, model_s, ok))
        self._notify()

    def request_finished(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        self._notify()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds after some report (or already holds)."""
        if condition():
            return
        event = asyncio.Event()
        self._waiters.append((condition, event))
        async with asyncio.timeout(GUARD_S):
            await event.wait()

    def _notify(self) -> None:
        for condition, event in self._waiters:
            if condition():
                event.set()


class Kit:
    """Builds fake models and started batchers; at teardown opens every gate, then closes all."""

    def __init__(self) -> None:
        self.observer = RecordingObserver()
        self._models: list[FakeModel] = []
        self._batchers: list[MicroBatcher] = []

    def model(self, predict: PredictFn = predict_sum, *, gated: int = 0) -> FakeModel:
        model = FakeModel(predict, gated=gated)
        self._models.append(model)
        return model

    def batcher(self, predict: PredictFn, **settings: Any) -> MicroBatcher:
        defaults: dict[str, Any] = {
            "max_batch_rows": 8,
            "max_queue_rows": 64,
            "observer": self.observer,
        }
        batcher = MicroBatcher(predict, **(defaults | settings))
        batcher.start()
        self._batchers.append(batcher)
        return batcher

    async def close(self) -> None:
        for model in self._models:
            model.release_all()
        for batcher in self._batchers:
            await batcher.aclose()


@pytest.fixture(name="kit")
async def _kit() -> AsyncIterator[Kit]:
    kit = Kit()
    yield kit
    await kit.close()


def submit_soon(
    batcher: MicroBatcher, rows: NDArray[Any], *, timeout_s: float | None = None
) -> asyncio.Task[NDArray[Any]]:
    """Submit from a task of its own, as concurrent HTTP requests do."""
    return asyncio.create_task(batcher.submit(rows, timeout_s=timeout_s))


async def run_mix(predict: PredictFn, sizes: list[int], max_batch_rows: int, concurrency: int):
    """Submit requests of ``sizes`` rows at once; return their rows, outputs and model calls."""
    model = FakeModel(predict)
    total = sum(sizes)
    batcher = MicroBatcher(
        model,
        max_batch_rows=max_batch_rows,
        max_queue_rows=max(total, max_batch_rows),
        max_concurrent_batches=concurrency,
    )
    batcher.start()
    try:
        requests = [make_rows(n_rows, seed) for seed, n_rows in enumerate(sizes)]
        outputs = await asyncio.gather(*(batcher.submit(rows) for rows in requests))
    finally:
        await batcher.aclose()
    return requests, outputs, model.calls


class TestResults:
    @settings(max_examples=60, deadline=None)
    @given(
        sizes=st.lists(st.integers(1, 50), min_size=1, max_size=12),
        max_batch_rows=st.integers(1, 64),
        concurrency=st.integers(1, 3),
    )
    async def test_batched_predict_equals_unbatched(
        self, sizes: list[int], max_batch_rows: int, concurrency: int
    ) -> None:
        """Each request gets exactly what the model returns for its rows alone, in order."""
        requests, outputs, calls = await run_mix(predict_sum, sizes, max_batch_rows, concurrency)

        for rows, output in zip(requests, outputs, strict=True):
            np.testing.assert_array_equal(output, predict_sum(rows))
        assert all(len(call) <= max_batch_rows for call in calls)
        assert sum(len(call) for call in calls) == sum(sizes)

    @settings(max_examples=60, deadline=None)
    @given(
        sizes=st.lists(st.integers(1, 50), min_size=1, max_size=12),
        max_batch_rows=st.integers(1, 64),
        concurrency=st.integers(1, 3),
    )
    async def test_batched_proba_equals_unbatched(
        self, sizes: list[int], max_batch_rows: int, concurrency: int
    ) -> None:
        """2-D probability rows come back per request within 1e-12 of the unbatched call."""
        requests, outputs, _ = await run_mix(predict_softmax, sizes, max_batch_rows, concurrency)

        for rows, output in zip(requests, outputs, strict=True):
            assert output.shape == (len(rows), FEATURES)
            np.testing.assert_allclose(output, predict_softmax(rows), rtol=0, atol=1e-12)

    async def test_waiting_requests_coalesce_into_one_batch(self, kit: Kit) -> None:
        """Requests that arrive while the model is busy run together in the next call, FIFO."""
        model = kit.model(gated=1)
        batcher = kit.batcher(model)
        first = submit_soon(batcher, make_rows(1, 0))
        await model.entered()
        waiting = [make_rows(n_rows, seed) for seed, n_rows in enumerate([1, 2, 3], start=1)]
        tasks = [submit_soon(batcher, rows) for rows in waiting]
        await kit.observer.until(lambda: batcher.queued_rows == 6)

        model.release()
        outputs = await asyncio.gather(*tasks)
        await first

        assert [len(call) for call in model.calls] == [1, 6]
        np.testing.assert_array_equal(model.calls[1], np.concatenate(waiting))
        for rows, output in zip(waiting, outputs, strict=True):
            np.testing.assert_array_equal(output, predict_sum(rows))

    async def test_oversized_request_runs_as_chunks_in_order(self, kit: Kit) -> None:
        """A request over max_batch_rows runs as consecutive chunks; the last shares a batch."""
        model = kit.model(predict_softmax, gated=1)
        batcher = kit.batcher(model, max_batch_rows=4)
        first = submit_soon(batcher, make_rows(1, 0))
        await model.entered()
        big, small = make_rows(10, 1), make_rows(3, 2)
        big_task, small_task = submit_soon(batcher, big), submit_soon(batcher, small)
        await kit.observer.until(lambda: batcher.queued_rows == 13)

        model.release()
        big_output, small_output = await asyncio.gather(big_task, small_task)
        await first

        calls = model.calls[1:]
        np.testing.assert_array_equal(calls[0], big[0:4])
        np.testing.assert_array_equal(calls[1], big[4:8])
        np.testing.assert_array_equal(calls[2], np.concatenate([big[8:], small[:2]]))
        np.testing.assert_array_equal(calls[3], small[2:])
        np.testing.assert_allclose(big_output, predict_softmax(big), rtol=0, atol=1e-12)
        np.testing.assert_allclose(small_output, predict_softmax(small), rtol=0, atol=1e-12)

    async def test_chunks_finishing_out_of_order_are_joined_in_order(self, kit: Kit) -> None:
        """With concurrent batches a later chunk may finish first; rows still return in order."""
        model = kit.model(gated=1)
        batcher = kit.batcher(model, max_batch_rows=2, max_concurrent_batches=2)
        rows = make_rows(4, 0)
        task = submit_soon(batcher, rows)
        await model.entered()
        await kit.observer.until(lambda: len(kit.observer.finished) == 1)  # the second chunk

        model.release()

        np.testing.assert_array_equal(await task, predict_sum(rows))
        np.testing.assert_array_equal(model.calls[0], rows[:2])

    async def test_batches_run_concurrently_up_to_the_limit(self, kit: Kit) -> None:
        """max_concurrent_batches model calls run at the same time."""
        model = kit.model(gated=2)
        batcher = kit.batcher(model, max_batch_rows=1, max_concurrent_batches=2)
        tasks = [submit_soon(batcher, make_rows(1, seed)) for seed in range(3)]
        await model.entered(0)
        await model.entered(1)

        assert batcher.running_batches == 2
        assert batcher.queued_rows == 1
        model.release_all()
        await asyncio.gather(*tasks)
        assert len(model.calls) == 3

    async def test_model_runs_in_the_given_executor(self, kit: Kit) -> None:
        """predict runs in the injected executor's threads, not on the event loop."""
        model = kit.model()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model-pool") as pool:
            batcher = kit.batcher(model, executor=pool)
            await batcher.submit(make_rows(2, 0))
            await batcher.aclose()

        assert model.threads[0].startswith("model-pool")


class TestInline:
    async def test_small_batches_run_on_the_loop_and_larger_ones_in_the_executor(
        self, kit: Kit
    ) -> None:
        """A batch of up to inline_max_rows rows runs on the loop's thread; a bigger one won't."""
        model = kit.model()
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="model-pool") as pool:
            batcher = kit.batcher(model, executor=pool, inline_max_rows=2)
            small = await batcher.submit(make_rows(2, 0))
            large = await batcher.submit(make_rows(3, 1))
            await batcher.aclose()

        np.testing.assert_array_equal(small, predict_sum(make_rows(2, 0)))
        np.testing.assert_array_equal(large, predict_sum(make_rows(3, 1)))
        assert [threading.current_thread().name, "model-pool"] == [
            name.rsplit("_", 1)[0] for name in model.threads
        ]

    async def test_failing_inline_batch_is_rerun_so_only_the_offender_fails(self, kit: Kit) -> None:
        """An inline batch that raises is re-run request by request, inline, like a threaded one."""
        model = kit.model(picky, gated=1)
        batcher = kit.batcher(model, inline_max_rows=3)
        first = submit_soon(batcher, make_rows(4, 0))  # holds the only slot, in a thread
        await model.entered()
        good, bad, other_good = (make_rows(1, seed) for seed in range(1, 4))
        bad[0, 0] = BAD_INPUT
        tasks = [submit_soon(batcher, rows) for rows in (good, bad, other_good)]
        await kit.observer.until(lambda: batcher.queued_rows == 3)

        model.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await first

        np.testing.assert_array_equal(results[0], predict_sum(good))
        assert isinstance(results[1], ModelInputError)
        np.testing.assert_array_equal(results[2], predict_sum(other_good))
        assert [len(call) for call in model.calls] == [4, 3, 1, 1, 1]
        assert {threading.current_thread().name} == set(model.threads[1:])


class TestDispatchTiming:
    async def test_idle_batcher_dispatches_at_once_without_a_timer(self, kit: Kit) -> None:
        """With max_wait_s=0 a lone request runs at once; the sleep is never used."""
        sleep = FakeSleep()
        model = kit.model()
        batcher = kit.batcher(model, sleep=sleep)
        rows = make_rows(2, 0)

        np.testing.assert_array_equal(await batcher.submit(rows), predict_sum(rows))
        assert sleep.delays == []

    async def test_full_batch_dispatches_before_max_wait(self, kit: Kit) -> None:
        """Once max_batch_rows rows are queued they run, without waiting out max_wait_s."""
        sleep = FakeSleep()
        model = kit.model()
        batcher = kit.batcher(model, max_batch_rows=4, max_wait_s=10.0, sleep=sleep)
        first, second = make_rows(2, 0), make_rows(2, 1)

        outputs = await asyncio.gather(batcher.submit(first), batcher.submit(second))

        assert [len(call) for call in model.calls] == [4]
        np.testing.assert_array_equal(outputs[1], predict_sum(second))
        assert sleep.finished == 0

    async def test_partial_batch_dispatches_when_max_wait_expires(self, kit: Kit) -> None:
        """A partial batch waits for the max_wait_s timer, and runs when it fires."""
        sleep = FakeSleep()
        model = kit.model()
        batcher = kit.batcher(model, max_wait_s=10.0, sleep=sleep)
        task = submit_soon(batcher, make_rows(1, 0))
        await sleep.called()

        assert model.calls == []
        assert 0 < sleep.delays[0] <= 10.0
        sleep.release()
        await task
        assert len(model.calls) == 1

    async def test_max_wait_counts_from_the_oldest_row_arrival(self, kit: Kit) -> None:
        """Rows queued behind a busy model wait out what is left of max_wait_s, not all of it."""
        sleep = FakeSleep()
        model = kit.model(gated=1)
        batcher = kit.batcher(model, max_batch_rows=2, max_wait_s=10.0, sleep=sleep)
        first = submit_soon(batcher, make_rows(2, 0))  # a full batch: no timer
        await model.entered()
        second = submit_soon(batcher, make_rows(1, 1))
        await kit.observer.until(lambda: batcher.queued_rows == 1)

        model.release()
        await first
        await sleep.called()

        assert len(sleep.delays) == 1
        assert 0 < sleep.delays[0] < 10.0
        sleep.release()
        await second
        assert len(model.calls) == 2

    async def test_rows_older_than_max_wait_dispatch_when_the_model_frees(self, kit: Kit) -> None:
        """Rows that waited out max_wait_s behind a busy model run at once, with no new timer."""
        sleep = FakeSleep()
        model = kit.model(gated=1)
        batcher = kit.batcher(model, max_batch_rows=2, max_wait_s=1e-6, sleep=sleep)
        first = submit_soon(batcher, make_rows(2, 0))
        await model.entered()
        second = submit_soon(batcher, make_rows(1, 1))
        await kit.observer.until(lambda: batcher.queued_rows == 1)

        model.release()
        await asyncio.gather(first, second)

        assert sleep.delays == []
        assert len(model.calls) == 2

    async def test_timer_started_with_a_free_slot_holds_while_another_batch_ends(
        self, kit: Kit
    ) -> None:
        """The end of another batch does not cut a running max_wait_s timer short."""
        sleep = FakeSleep()
        model = kit.model(gated=1)
        batcher = kit.batcher(
            model, max_batch_rows=2, max_wait_s=10.0, max_concurrent_batches=2, sleep=sleep
        )
        first = submit_soon(batcher, make_rows(2, 0))
        await model.entered()
        second = submit_soon(batcher, make_rows(1, 1))
        await sleep.called()

        model.release()
        await first
        assert len(model.calls) == 1
        sleep.release()
        await second

        assert len(sleep.delays) == 1
        assert len(model.calls) == 2


class TestAdmission:
    async def test_full_queue_rejects_at_once_and_queues_nothing(self, kit: Kit) -> None:
        """Rows over max_queue_rows get OverloadedError; the queue is left as it was."""
        model = kit.model(gated=1)
        batcher = kit.batcher(model, max_batch_rows=4, max_queue_rows=4)
        running = submit_soon(batcher, make_rows(4, 0))
        await model.entered()
        queued = submit_soon(batcher, make_rows(3, 1))
        await kit.observer.until(lambda: batcher.queued_rows == 3)

        with pytest.raises(OverloadedError, match="3 of 4 queued rows"):
            await batcher.submit(make_rows(2, 2))

        assert batcher.queued_rows == 3
        assert kit.observer.outcomes == ["rejected"]
        model.release()
        await asyncio.gather(running, queued)
        assert [len(call) for call in model.calls] == [4, 3]

    async def test_submit_before_start_is_not_ready(self) -> None:
        """A batcher that is not started refuses requests with ShuttingDownError."""
        observer = RecordingObserver()
        batcher = MicroBatcher(predict_sum, max_batch_rows=2, max_queue_rows=2, observer=observer)

        with pytest.raises(ShuttingDownError, match="not ready"):
            await batcher.submit(make_rows(1, 0))
        assert observer.outcomes == ["rejected"]

    @pytest.mark.parametrize("shape", [(3,), (0, 3), (1, 1, 3)])
    async def test_rows_must_be_a_non_empty_matrix(self, kit: Kit, shape: tuple[int, ...]) -> None:
        """submit() takes a 2-D array with at least one row; anything else is a caller's bug."""
        batcher = kit.batcher(predict_sum)

        with pytest.raises(ValueError, match="2-D array"):
            await batcher.submit(np.zeros(shape))

    @pytest.mark.parametrize(
        ("setting", "match"),
        [
            ({"max_batch_rows": 0}, "max_batch_rows must be a positive integer"),
            ({"max_queue_rows": 0}, "max_queue_rows must be a positive integer"),
            ({"max_concurrent_batches": 0}, "max_concurrent_batches must be a positive"),
            ({"max_batch_rows": 9}, r"max_queue_rows \(8\) must be at least max_batch_rows"),
            ({"max_wait_s": -0.001}, "max_wait_s must be a finite number >= 0"),
            ({"max_wait_s": math.inf}, "max_wait_s must be a finite number >= 0"),
            ({"max_wait_s": math.nan}, "max_wait_s must be a finite number >= 0"),
            ({"inline_max_rows": -1}, "inline_max_rows must be >= 0"),
        ],
    )
    def test_nonsensical_settings_are_refused(self, setting: dict[str, Any], match: str) -> None:
        """The constructor raises ValueError naming the setting that is out of range."""
        settings: dict[str, Any] = {"max_batch_rows": 4, "max_queue_rows": 8} | setting

        with pytest.raises(ValueError, match=match):
            MicroBatcher(predict_sum, **settings)

    def test_start_needs_a_running_loop(self) -> None:
        """start() outside a running event loop raises RuntimeError."""
        batcher = MicroBatcher(predict_sum, max_batch_rows=1, max_queue_rows=1)

        with pytest.raises(RuntimeError, match="no running event loop"):
            batcher.start()

    async def test_start_twice_is_refused(self, kit: Kit) -> None:
        """A batcher starts once."""
        batcher = kit.batcher(predict_sum)

        with pytest.raises(RuntimeError, match="already started"):
            batcher.start()


class TestDeadlines:
    async def test_deadline_while_queued_costs_no_model_time(self, kit: Kit) -> None:
        """A request still queued at its deadline gets DeadlineExceededError; its rows never run."""
        model = kit.model(gated=1)
        batcher = kit.batcher(model)
        running = make_rows(1, 0)
        running_task = submit_soon(batcher, running)
        await model.entered()
        late, after = make_rows(2, 1), make_rows(1, 2)
        late_task = submit_soon(batcher, late, timeout_s=0.05)
        after_task = submit_soon(batcher, after)
        await kit.observer.until(lambda: batcher.queued_rows == 3)

        with pytest.raises(DeadlineExceededError, match="50 ms"):
            await late_task

        assert batcher.queued_rows == 1
        model.release()
        await asyncio.gather(running_task, after_task)
        np.testing.assert_array_equal(model.calls[0], running)
        np.testing.assert_array_equal(model.calls[1], after)
        assert len(model.calls) == 2
        assert sorted(kit.observer.outcomes) == ["ok", "ok", "timeout"]

    async def test_deadline_passed_during_a_stalled_loop_is_not_dispatched(self, kit: Kit) -> None:
        """Rows whose deadline passed are skipped even if the loop has not run their timer yet."""

        class StallingObserver(RecordingObserver):
            """Holds the loop in batch_finished until a given loop time (an overloaded loop)."""

            stall_until = -math.inf

            def batch_finished(self, rows: int, model_s: float, *, ok: bool) -> None:
                loop = asyncio.get_running_loop()
                while loop.time() < self.stall_until:
                    pass
                super().batch_finished(rows, model_s, ok=ok)

        observer = StallingObserver()
        model = kit.model(gated=1)
        batcher = kit.batcher(model, observer=observer)
        running_task = submit_soon(batcher, make_rows(1, 0))
        await model.entered()
        late_task = submit_soon(batcher, make_rows(1, 1), timeout_s=0.01)
        await observer.until(lambda: batcher.queued_rows == 1)

        # The loop stalls past the deadline while finishing the running batch, so the
        # dispatcher looks at the queue before the late request's timer gets to run.
        observer.stall_until = asyncio.get_running_loop().time() + 0.02
        model.release()

        await running_task
        with pytest.raises(DeadlineExceededError):
            await late_task
        assert len(model.calls) == 1
        assert batcher.queued_rows == 0

    async def test_deadline_while_running_answers_at_the_deadline(self, kit: Kit) -> None:
        """A caller whose batch is running still gets DeadlineExceededError at its deadline."""
        model = kit.model(gated=1)
        batcher = kit.batcher(model, max_batch_rows=2, max_wait_s=10.0, sleep=FakeSleep())
        late_task = submit_soon(batcher, make_rows(1, 0), timeout_s=0.2)
        patient_rows = make_rows(1, 1)
        patient_task = submit_soon(batcher, patient_rows)
        await model.entered()

        with pytest.raises(DeadlineExceededError):
            await late_task

        assert batcher.running_batches == 1
        model.release()
        np.testing.assert_array_equal(await patient_task, predict_sum(patient_rows))
        assert [len(call) for call in model.calls] == [2]

    @pytest.mark.parametrize("timeout_s", [0.0, -1.0])
    async def test_deadline_already_passed_is_refused_at_once(
        self, kit: Kit, timeout_s: float
    ) -> None:
        """A request with no time left gets DeadlineExceededError without being queued."""
        model = kit.model()
        batcher = kit.batcher(model)

        with pytest.raises(DeadlineExceededError):
            await batcher.submit(make_rows(1, 0), timeout_s=timeout_s)

        assert model.calls == []
        assert kit.observer.depths == []
        assert kit.observer.outcomes == ["timeout"]

    async def test_hung_model_is_abandoned_once_every_caller_gave_up(
        self, kit: Kit, caplog: pytest.LogCaptureFixture
    ) -> None:
        """When all callers of a running batch gave up, its slot frees and later batches run."""
        caplog.set_level(logging.WARNING, logger="service.batching")
        model = kit.model(gated=1)  # the first call hangs until teardown
        batcher = kit.batcher(model)

        with pytest.raises(DeadlineExceededError):
            await batcher.submit(make_rows(1, 0), timeout_s=0.05)
        assert batcher.running_batches == 0

        rows = make_rows(2, 1)
        np.testing.assert_array_equal(await batcher.submit(rows), predict_sum(rows))
        abandoned = [record for record in caplog.records if "abandoning" in record.message]
        assert len(abandoned) == 1
        assert abandoned[0].levelno == logging.WARNING


class TestCancellation:
    async def test_cancelled_queued_request_leaves_the_queue(self, kit: Kit) -> None:
        """A cancelled caller's rows leave the queue, never run, and later requests still work."""
        model = kit.model(gated=1)
        batcher = kit.batcher(model)
        running = make_rows(1, 0)
        running_task = submit_soon(batcher, running)
        await model.entered()
        gone_task = submit_soon(batcher, make_rows(3, 1))
        await kit.observer.until(lambda: batcher.queued_rows == 3)

        gone_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone_task

        assert batcher.queued_rows == 0
        model.release()
        await running_task
        later = make_rows(2, 2)
        np.testing.assert_array_equal(await batcher.submit(later), predict_sum(later))
        assert len(model.calls) == 2
        np.testing.assert_array_equal(model.calls[1], later)
        assert kit.observer.outcomes == ["ok", "ok"]

    @pytest.mark.parametrize(
        ("predict", "answered"),
        [(predict_sum, True), (lambda rows: predict_sum(rows)[:1], False)],
        ids=["answered", "failed"],
    )
    async def test_cancelled_caller_in_a_running_batch_is_never_resolved(
        self, kit: Kit, caplog: pytest.LogCaptureFixture, predict: PredictFn, answered: bool
    ) -> None:
        """Answering or failing a batch skips a cancelled caller's future: no InvalidStateError."""
        loop_errors: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: loop_errors.append(context)
        )
        model = kit.model(predict, gated=1)
        batcher = kit.batcher(model, max_batch_rows=2, max_wait_s=10.0, sleep=FakeSleep())
        gone_task = submit_soon(batcher, make_rows(1, 0))
        staying = make_rows(1, 1)
        staying_task = submit_soon(batcher, staying)
        await model.entered()

        gone_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone_task
        assert batcher.running_batches == 1
        model.release()

        if answered:
            np.testing.assert_array_equal(await staying_task, predict_sum(staying))
        else:  # one row out for two in: the batch fails
            with pytest.raises(PredictionError):
                await staying_task
        assert [len(call) for call in model.calls] == [2]
        assert batcher.running_batches == 0
        assert loop_errors == []
        assert [record for record in caplog.records if record.exc_info] == []


class TestModelErrors:
    async def test_failing_batch_is_rerun_so_only_the_offender_fails(
        self, kit: Kit, caplog: pytest.LogCaptureFixture
    ) -> None:
        """ValueError -> ModelInputError, other errors -> PredictionError, for that request only."""
        caplog.set_level(logging.ERROR, logger="service.batching")
        model = kit.model(picky, gated=1)
        batcher = kit.batcher(model)
        first = submit_soon(batcher, make_rows(1, 0))
        await model.entered()
        good, bad, other_good, broken = (make_rows(1, seed) for seed in range(1, 5))
        bad[0, 0] = BAD_INPUT
        broken[0, 1] = BROKEN
        tasks = [submit_soon(batcher, rows) for rows in (good, bad, other_good, broken)]
        await kit.observer.until(lambda: batcher.queued_rows == 4)

        model.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await first

        np.testing.assert_array_equal(results[0], predict_sum(good))
        assert isinstance(results[1], ModelInputError)
        assert str(results[1]) == "The model rejected the input: feature 0 must be positive"
        np.testing.assert_array_equal(results[2], predict_sum(other_good))
        assert isinstance(results[3], PredictionError)
        assert "secret" not in str(results[3])
        assert [len(call) for call in model.calls] == [1, 4, 1, 1, 1, 1]
        assert [ok for _, _, ok in kit.observer.finished] == [True, False, True, False, True, False]
        assert sorted(kit.observer.outcomes) == ["error", "invalid", "ok", "ok", "ok"]
        [logged] = [record for record in caplog.records if record.exc_info]
        assert isinstance(logged.exc_info[1], RuntimeError)  # type: ignore[index]
        assert "secret" not in logged.message

    @pytest.mark.parametrize(
        ("bad_value", "error"), [(BAD_INPUT, ModelInputError), (BROKEN, PredictionError)]
    )
    async def test_lone_request_error_is_mapped_without_a_rerun(
        self, kit: Kit, bad_value: float, error: type[Exception]
    ) -> None:
        """A request alone in its batch fails at once; the model is not called again."""
        model = kit.model(picky)
        batcher = kit.batcher(model)
        rows = make_rows(2, 0)
        rows[1, 2] = bad_value

        with pytest.raises(error):
            await batcher.submit(rows)
        assert len(model.calls) == 1

    async def test_caller_gone_during_a_failed_batch_is_not_rerun(self, kit: Kit) -> None:
        """Re-running a failed batch skips requests whose caller has given up meanwhile."""
        model = kit.model(picky, gated=1)
        batcher = kit.batcher(model, max_batch_rows=2, max_wait_s=10.0, sleep=FakeSleep())
        gone_task = submit_soon(batcher, make_rows(1, 0))
        bad = make_rows(1, 1)
        bad[0, 0] = BAD_INPUT
        bad_task = submit_soon(batcher, bad)
        await model.entered()

        gone_task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone_task
        model.release()

        with pytest.raises(ModelInputError):
            await bad_task
        assert [len(call) for call in model.calls] == [2, 1]
        np.testing.assert_array_equal(model.calls[1], bad)

    async def test_failed_chunk_fails_the_request_and_drops_its_other_chunks(
        self, kit: Kit
    ) -> None:
        """When a chunk of an oversized request fails, its remaining rows never run."""
        model = kit.model(picky)
        batcher = kit.batcher(model, max_batch_rows=2)
        rows = make_rows(6, 0)
        rows[0, 0] = BAD_INPUT

        with pytest.raises(ModelInputError):
            await batcher.submit(rows)

        assert len(model.calls) == 1
        assert batcher.queued_rows == 0

    async def test_wrong_row_count_fails_every_request_of_the_batch(
        self, kit: Kit, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A model that drops rows fails the whole batch with PredictionError, never misassigns."""
        model = kit.model(lambda rows: predict_sum(rows)[:1], gated=1)
        batcher = kit.batcher(model)
        first = submit_soon(batcher, make_rows(1, 0))  # one row in, one row out: fine
        await model.entered()
        tasks = [submit_soon(batcher, make_rows(1, seed)) for seed in (1, 2)]
        await kit.observer.until(lambda: batcher.queued_rows == 2)

        model.release()
        results = await asyncio.gather(*tasks, return_exceptions=True)

        await first
        assert all(isinstance(result, PredictionError) for result in results)
        assert [len(call) for call in model.calls] == [1, 2]
        assert [ok for _, _, ok in kit.observer.finished] == [True, False]
        assert any("for 2 input rows" in record.message for record in caplog.records)

    async def test_scalar_output_is_a_prediction_error(self, kit: Kit) -> None:
        """An output without rows (a 0-d array) is not mistaken for an answer."""
        model = kit.model(lambda rows: np.asarray(rows.sum()))
        batcher = kit.batcher(model)

        with pytest.raises(PredictionError):
            await batcher.submit(make_rows(1, 0))

    async def test_unexpected_error_in_a_batch_fails_its_requests_only(
        self, kit: Kit, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An error outside the model (here the observer) fails that batch; the next one runs."""

        class FailingOnceObserver(RecordingObserver):
            def batch_finished(self, rows: int, model_s: float, *, ok: bool) -> None:
                super().batch_finished(rows, model_s, ok=ok)
                if len(self.finished) == 1:
                    raise RuntimeError("metrics broke")

        batcher = kit.batcher(kit.model(), observer=FailingOnceObserver())

        with pytest.raises(PredictionError):
            await batcher.submit(make_rows(1, 0))
        rows = make_rows(1, 1)
        np.testing.assert_array_equal(await batcher.submit(rows), predict_sum(rows))
        assert any("unexpected error" in record.message for record in caplog.records)


class TestClosing:
    async def test_aclose_drains_queued_and_running_work(self, kit: Kit) -> None:
        """aclose() refuses new requests at once and lets queued and running ones finish."""
        model = kit.model(gated=1)
        batcher = kit.batcher(model, max_wait_s=10.0, max_batch_rows=2, sleep=FakeSleep())
        running, queued = make_rows(2, 0), make_rows(1, 1)
        running_task = submit_soon(batcher, running)
        await model.entered()
        queued_task = submit_soon(batcher, queued)
        await kit.observer.until(lambda: batcher.queued_rows == 1)

        closing = asyncio.create_task(batcher.aclose())
        refused = submit_soon(batcher, make_rows(1, 2))  # runs after aclose() has begun
        with pytest.raises(ShuttingDownError, match="shutting down"):
            await refused
        assert batcher.closed
        model.release()
        await closing

        np.testing.assert_array_equal(await running_task, predict_sum(running))
        np.testing.assert_array_equal(await queued_task, predict_sum(queued))
        assert [len(call) for call in model.calls] == [2, 1]

    async def test_aclose_timeout_fails_what_is_left(
        self, kit: Kit, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Work still queued or running when the drain times out gets ShuttingDownError."""
        model = kit.model(gated=1)  # hangs until teardown
        batcher = kit.batcher(model)
        running_task = submit_soon(batcher, make_rows(1, 0))
        await model.entered()
        queued_task = submit_soon(batcher, make_rows(2, 1))
        await kit.observer.until(lambda: batcher.queued_rows == 2)

        await batcher.aclose(timeout_s=0.05)

        with pytest.raises(ShuttingDownError):
            await running_task
        with pytest.raises(ShuttingDownError):
            await queued_task
        assert (batcher.queued_rows, batcher.running_batches) == (0, 0)
        assert kit.observer.depths[-1] == 0
        assert kit.observer.outcomes == ["rejected", "rejected"]
        assert any("abandoning 1 running batch" in record.message for record in caplog.records)

    async def test_aclose_timeout_fails_a_partly_running_request_once(self, kit: Kit) -> None:
        """An oversized request with one chunk running and one queued gets one ShuttingDownError."""
        model = kit.model(gated=1)  # hangs until teardown
        batcher = kit.batcher(model, max_batch_rows=2)
        task = submit_soon(batcher, make_rows(4, 0))
        await model.entered()
        assert batcher.queued_rows == 2

        await batcher.aclose(timeout_s=0.05)

        with pytest.raises(ShuttingDownError):
            await task
        assert kit.observer.outcomes == ["rejected"]
        assert len(model.calls) == 1

    async def test_aclose_is_idempotent(self, kit: Kit) -> None:
        """Concurrent and repeated aclose() calls all return once the batcher has stopped."""
        batcher = kit.batcher(predict_sum)
        await batcher.submit(make_rows(1, 0))

        await asyncio.gather(batcher.aclose(), batcher.aclose())
        await batcher.aclose()

        assert batcher.closed
        with pytest.raises(ShuttingDownError):
            await batcher.submit(make_rows(1, 0))

    async def test_closing_a_batcher_that_never_started(self) -> None:
        """A never-started batcher closes cleanly and cannot be started afterwards."""
        batcher = MicroBatcher(predict_sum, max_batch_rows=1, max_queue_rows=1)

        await batcher.aclose()

        assert batcher.closed
        with pytest.raises(RuntimeError, match="closed"):
            batcher.start()
        with pytest.raises(ShuttingDownError, match="shutting down"):
            await batcher.submit(make_rows(1, 0))


class TestObserver:
    async def test_reports_depths_batches_waits_and_outcomes(self, kit: Kit) -> None:
        """The observer sees every queue depth, each batch's rows and waits, and each outcome."""
        model = kit.model(gated=1)
        batcher = kit.batcher(model)
        first = submit_soon(batcher, make_rows(2, 0))
        await model.entered()
        tasks = [submit_soon(batcher, make_rows(n_rows, n_rows)) for n_rows in (1, 3)]
        await kit.observer.until(lambda: batcher.queued_rows == 4)

        model.release()
        await asyncio.gather(first, *tasks)

        observer = kit.observer
        assert observer.depths == [2, 0, 1, 4, 0]
        assert [(rows, len(waits)) for rows, waits in observer.started] == [(2, 1), (4, 2)]
        assert all(wait >= 0 for _, waits in observer.started for wait in waits)
        assert [(rows, ok) for rows, _, ok in observer.finished] == [(2, True), (4, True)]
        assert all(model_s >= 0 for _, model_s, _ in observer.finished)
        assert observer.outcomes == ["ok", "ok", "ok"]
