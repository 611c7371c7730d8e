"""Which batches run on the event loop's thread: those that stall it less than a budget.

Handing a model call to a worker thread and back costs a queue put, a thread wake-up, the GIL
changing hands twice and a wake-up of the loop. On the bench (2 workers on 2 cores, the
RandomForest at 64 connections) that came to ~14 us of CPU per request, 5% of all the service
spends on one: 266 us per request with batches over 16 rows in threads, 252 with all on the loop.
With a worker per core, a thread buys no CPU for a call that holds the GIL or competes for the
same cores; what it buys is a loop that keeps reading and answering other requests meanwhile.
So a batch runs on the loop when its measured call stalls the loop no longer than
``LOOP_STALL_BUDGET_S``, and in a worker thread otherwise. (The hand-off itself is no steady
yardstick: its median round trip came to 11 us in one start-up, 54 in another and 88 to 171 in
a script, depending on which cores the two threads ran on.) The call time is measured when a
version loads (:func:`inline_limit`), and the outcome is logged.

Only code with bounded per-row cost runs inline: scikit-learn's own estimators with no
user-supplied callables, and the tree engine. A model that may block (a custom class, a
``FunctionTransformer`` around user code) always runs in a worker thread, where a hung call
cannot stall the loop: its callers still get their deadline answers.

Threads: everything here runs in the loader's thread at load time.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Final

import numpy as np

__all__ = ["LOOP_STALL_BUDGET_S", "InlineLimit", "bounded", "inline_limit"]

# Calls per measured point: the median of a few is steady enough for a threshold.
_REPEATS = 7
LOOP_STALL_BUDGET_S: Final = 0.0005
"""The longest model call that runs on the loop: a batch of 256 rows of the bench's 100-tree
RandomForest through the tree engine takes ~0.47 ms; a fitted Pipeline on a table takes ~5."""


@dataclass(frozen=True, slots=True)
class InlineLimit:
    """Batches of at most ``rows`` rows run on the loop (0: none); the figure behind it."""

    rows: int
    call_s: float
    """The measured call time at ``rows`` rows (at 1 row when ``rows`` is 0)."""


def bounded(model: Any) -> bool:
    """Whether ``model`` and all its parts are scikit-learn's own code, with no user callables."""
    if not _sklearn_class(model):
        return False
    try:
        params = model.get_params(deep=True)
    except Exception:
        return False
    for value in params.values():
        if hasattr(value, "get_params"):
            if not _sklearn_class(value):
                return False
        elif callable(value) and not isinstance(value, type):
            # FunctionTransformer(func=...), a callable kernel or metric: user code.
            return False
    return True


def _sklearn_class(obj: Any) -> bool:
    return type(obj).__module__.startswith("sklearn.")


def inline_limit(
    call: Callable[[Any], Any],
    n_features: int,
    max_rows: int,
    budget_s: float = LOOP_STALL_BUDGET_S,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> InlineLimit:
    """The largest power-of-two batch (up to ``max_rows``) whose call fits in ``budget_s``.

    ``call`` must already be warm; ``clock`` times it (tests inject one). A call that raises
    (some models refuse all-zero rows) leaves the limit where it is; ``call_s`` is 0 when the
    first one did.
    """
    limit, limit_s = 0, 0.0
    rows = 1
    while rows <= max_rows:
        sample = np.zeros((rows, n_features), dtype=np.float64)
        try:
            call_s = _median_call_s(call, sample, clock)
        except Exception:
            break
        if call_s > budget_s:
            if limit == 0:
                limit_s = call_s
            break
        limit, limit_s = rows, call_s
        if rows == max_rows:
            break
        rows = min(rows * 2, max_rows)
    return InlineLimit(limit, limit_s)


def _median_call_s(call: Callable[[Any], Any], sample: Any, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(_REPEATS):
        started = clock()
        call(sample)
        times.append(clock() - started)
    return statistics.median(times)
