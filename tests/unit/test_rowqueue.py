"""RowQueue: FIFO order, chunking, depth reports, drops, live heads and clearing.

The queue is synchronous: these tests only need a running loop for their requests' futures, and
they never sleep. Deadlines are plain numbers compared with the ``now`` a test passes in.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.rowqueue import Request
from service.rowqueue import RowQueue

FEATURES = 3
NOW = 100.0


def make_rows(n_rows: int, first: int = 0) -> NDArray[np.float64]:
    """Rows whose values say which row they are, so a misplaced row shows."""
    values = np.arange(first * FEATURES, (first + n_rows) * FEATURES, dtype=np.float64)
    return values.reshape(n_rows, FEATURES)


def make_request(n_rows: int, *, deadline: float | None = None) -> Request:
    """A request of ``n_rows`` rows with a pending future of the running loop."""
    future: asyncio.Future[NDArray[Any]] = asyncio.get_running_loop().create_future()
    return Request(make_rows(n_rows), future, NOW, deadline)


class Recorder:
    """A queue that records every depth it reports."""

    def __init__(self) -> None:
        self.depths: list[int] = []
        self.queue = RowQueue(self.depths.append)


class TestEmpty:
    async def test_empty_queue_holds_nothing(self) -> None:
        """A new queue has no rows, no requests, and is falsy."""
        queue = RowQueue()

        assert (0, 0, False) == (queue.rows, len(queue), bool(queue))

    async def test_take_from_an_empty_queue_is_empty_and_silent(self) -> None:
        """Taking from an empty queue returns an empty batch and reports no depth."""
        recorder = Recorder()

        batch = recorder.queue.take_batch(NOW, 4)

        assert ([], [], 0) == (batch.slices, batch.parts, batch.rows)
        assert [] == recorder.depths


class TestEnqueue:
    async def test_enqueue_counts_rows_and_reports_each_depth(self) -> None:
        """Each enqueue adds the request's rows and reports the new depth."""
        recorder = Recorder()
        first, second = make_request(2), make_request(3)

        recorder.queue.enqueue(first)
        recorder.queue.enqueue(second)

        assert [2, 5] == recorder.depths
        assert (5, 2, True) == (recorder.queue.rows, len(recorder.queue), bool(recorder.queue))
        assert (2, 3) == (first.queued, second.queued)


class TestTakeBatch:
    async def test_take_spans_requests_in_arrival_order(self) -> None:
        """A take gathers rows from the head of the queue in arrival order."""
        queue = RowQueue()
        requests = [make_request(n_rows) for n_rows in (2, 1, 3)]
        for request in requests:
            queue.enqueue(request)

        batch = queue.take_batch(NOW, 8)

        assert [(requests[0], 0, 2), (requests[1], 0, 1), (requests[2], 0, 3)] == batch.slices
        assert 6 == batch.rows
        assert (0, 0) == (queue.rows, len(queue))

    async def test_take_stops_at_max_rows(self) -> None:
        """A take holds at most max_rows rows and leaves the rest queued."""
        queue = RowQueue()
        first, second = make_request(2), make_request(2)
        queue.enqueue(first)
        queue.enqueue(second)

        batch = queue.take_batch(NOW, 2)

        assert ([(first, 0, 2)], 2) == (batch.slices, queue.rows)

    async def test_whole_request_goes_as_its_own_array(self) -> None:
        """A request taken whole is put in the batch as its array itself."""
        queue = RowQueue()
        request = make_request(3)
        queue.enqueue(request)

        batch = queue.take_batch(NOW, 3)

        assert batch.parts[0] is request.rows

    async def test_oversized_request_is_chunked_across_takes(self) -> None:
        """A request larger than max_rows runs as consecutive chunks, the last shared."""
        queue = RowQueue()
        big, small = make_request(5), make_request(1)
        queue.enqueue(big)
        queue.enqueue(small)

        batches = [queue.take_batch(NOW, 2) for _ in range(3)]

        assert [
            [(big, 0, 2)],
            [(big, 2, 4)],
            [(big, 4, 5), (small, 0, 1)],
        ] == [batch.slices for batch in batches]
        assert [2, 2, 2] == [batch.rows for batch in batches]

    async def test_chunks_are_views_of_the_request_rows(self) -> None:
        """Each chunk of an oversized request is a view of its rows, not a copy."""
        queue = RowQueue()
        big = make_request(5)
        queue.enqueue(big)

        parts = [queue.take_batch(NOW, 2).parts[0] for _ in range(3)]

        assert all(np.shares_memory(part, big.rows) for part in parts)
        assert all(
            np.array_equal(make_rows(n_rows, first), part)
            for (first, n_rows), part in zip([(0, 2), (2, 2), (4, 1)], parts, strict=True)
        )

    async def test_partly_taken_request_stays_at_the_head(self) -> None:
        """A request with rows left after a take keeps its place and counts only those rows."""
        queue = RowQueue()
        big, small = make_request(5), make_request(1)
        queue.enqueue(big)
        queue.enqueue(small)

        queue.take_batch(NOW, 2)

        assert (big, 3, 4, 2) == (queue.live_head(NOW), big.queued, queue.rows, len(queue))

    async def test_take_reports_the_depth_once(self) -> None:
        """A take reports the depth once, after taking its rows from several requests."""
        recorder = Recorder()
        for n_rows in (3, 2, 2):
            recorder.queue.enqueue(make_request(n_rows))

        recorder.queue.take_batch(NOW, 6)

        assert [3, 5, 7, 1] == recorder.depths

    async def test_take_skips_requests_that_are_not_live(self) -> None:
        """A take drops dead requests on its way, reporting the depth after each drop."""
        recorder = Recorder()
        first, gone, last = make_request(2), make_request(3), make_request(1)
        for request in (first, gone, last):
            recorder.queue.enqueue(request)
        gone.future.cancel()

        batch = recorder.queue.take_batch(NOW, 8)

        assert [(first, 0, 2), (last, 0, 1)] == batch.slices
        assert [2, 5, 6, 1, 0] == recorder.depths
        assert 0 == gone.queued


class TestDrop:
    async def test_drop_removes_a_queued_request(self) -> None:
        """Dropping a queued request removes all its rows and reports the new depth."""
        recorder = Recorder()
        first, second = make_request(2), make_request(3)
        recorder.queue.enqueue(first)
        recorder.queue.enqueue(second)

        recorder.queue.drop(first)

        assert [2, 5, 3] == recorder.depths
        assert (0, second) == (first.queued, recorder.queue.live_head(NOW))

    async def test_drop_of_a_partly_taken_request_removes_only_its_rest(self) -> None:
        """Dropping a partly taken request removes the rows it still had queued."""
        recorder = Recorder()
        big, small = make_request(5), make_request(1)
        recorder.queue.enqueue(big)
        recorder.queue.enqueue(small)
        recorder.queue.take_batch(NOW, 2)

        recorder.queue.drop(big)

        assert [5, 6, 4, 1] == recorder.depths
        assert (0, 1, 1) == (big.queued, recorder.queue.rows, len(recorder.queue))

    async def test_drop_of_a_request_without_queued_rows_does_nothing(self) -> None:
        """Dropping a request whose rows were all taken changes and reports nothing."""
        recorder = Recorder()
        request = make_request(2)
        recorder.queue.enqueue(request)
        recorder.queue.take_batch(NOW, 2)

        recorder.queue.drop(request)

        assert [2, 0] == recorder.depths


class TestLiveHead:
    async def test_live_head_is_the_oldest_live_request(self) -> None:
        """The live head of a queue of live requests is its oldest, left in place."""
        queue = RowQueue()
        first, second = make_request(1), make_request(1)
        queue.enqueue(first)
        queue.enqueue(second)

        assert (first, 2) == (queue.live_head(NOW), queue.rows)

    async def test_live_head_drops_cancelled_requests(self) -> None:
        """Requests whose caller was cancelled are dropped from the head, each reported."""
        recorder = Recorder()
        gone, also_gone, live = make_request(2), make_request(1), make_request(4)
        for request in (gone, also_gone, live):
            recorder.queue.enqueue(request)
        gone.future.cancel()
        also_gone.future.cancel()

        head = recorder.queue.live_head(NOW)

        assert (live, 4, 1) == (head, recorder.queue.rows, len(recorder.queue))
        assert [2, 3, 7, 5, 4] == recorder.depths
        assert (0, 0) == (gone.queued, also_gone.queued)

    async def test_live_head_drops_requests_past_their_deadline(self) -> None:
        """A request whose deadline has come is dropped, though its future is still pending."""
        queue = RowQueue()
        expired, live = make_request(2, deadline=NOW), make_request(1, deadline=NOW + 1)
        queue.enqueue(expired)
        queue.enqueue(live)

        assert (live, 1) == (queue.live_head(NOW), queue.rows)
        assert not expired.future.done()

    async def test_live_head_of_only_dead_requests_is_none(self) -> None:
        """When no queued request is live, live_head empties the queue and returns None."""
        queue = RowQueue()
        cancelled, expired = make_request(1), make_request(1, deadline=NOW - 1)
        queue.enqueue(cancelled)
        queue.enqueue(expired)
        cancelled.future.cancel()

        assert (None, 0, False) == (queue.live_head(NOW), queue.rows, bool(queue))


class TestClear:
    async def test_clear_returns_the_queued_requests_oldest_first(self) -> None:
        """clear empties the queue and returns its requests, partly taken ones included."""
        recorder = Recorder()
        big, small = make_request(5), make_request(1)
        recorder.queue.enqueue(big)
        recorder.queue.enqueue(small)
        recorder.queue.take_batch(NOW, 2)

        cleared = recorder.queue.clear()

        assert [big, small] == cleared
        assert (0, 0) == (big.queued, small.queued)
        assert (0, 0) == (recorder.queue.rows, len(recorder.queue))
        assert [5, 6, 4, 0] == recorder.depths

    async def test_clear_of_an_empty_queue_reports_nothing(self) -> None:
        """Clearing an empty queue returns no requests and reports no depth."""
        recorder = Recorder()

        assert [] == recorder.queue.clear()
        assert [] == recorder.depths
