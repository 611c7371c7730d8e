"""Which batches run on the event loop's thread: those cheaper than a hand-off to a worker thread.

Handing a model call to a worker thread and back costs a queue put, a thread wake-up, the GIL
changing hands twice and a wake-up of the loop: tens of microseconds, which is more than a
LogisticRegression call on a few rows costs. A batch whose measured call time is below that
hand-off therefore runs on the loop itself. Both are measured when a version loads
(:func:`measure_handoff_s`, :func:`inline_limit`), and the outcome is logged.

Only code with bounded per-row cost runs inline: scikit-learn's own estimators with no
user-supplied callables, and the tree engine. A model that may block (a custom class, a
``FunctionTransformer`` around user code) always runs in a worker thread, where a hung call
cannot stall the loop: its callers still get their deadline answers.

Threads: everything here runs in the loader's thread at load time.
"""

from __future__ import annotations

import concurrent.futures
import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["InlineLimit", "bounded", "inline_limit", "measure_handoff_s"]

# Calls per measured point: the median of a few is steady enough for a threshold.
_REPEATS = 7
_HANDOFF_REPEATS = 31
# Never inline a call that costs more than this, whatever the hand-off measured: the loop also
# parses and answers every other request of the worker.
_MAX_INLINE_S = 0.0005


@dataclass(frozen=True, slots=True)
class InlineLimit:
    """Batches of at most ``rows`` rows run on the loop (0: none); the figures behind it."""

    rows: int
    handoff_s: float
    call_s: float
    """The measured call time at ``rows`` rows (at 1 row when ``rows`` is 0)."""


@functools.cache
def measure_handoff_s() -> float:
    """The median round trip of an empty call through a worker thread, in seconds."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(int).result()  # the thread starts on first use
        times = []
        for _ in range(_HANDOFF_REPEATS):
            started = time.perf_counter()
            pool.submit(int).result()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


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
    handoff_s: float,
    *,
    clock: Callable[[], float] = time.perf_counter,
) -> InlineLimit:
    """The largest power-of-two batch (up to ``max_rows``) whose call costs less than a hand-off.

    ``call`` must already be warm; ``clock`` times it (tests inject one). A call that raises
    (some models refuse all-zero rows) leaves the limit where it is; ``call_s`` is 0 when the
    first one did.
    """
    threshold_s = min(handoff_s, _MAX_INLINE_S)
    limit, limit_s = 0, 0.0
    rows = 1
    while rows <= max_rows:
        sample = np.zeros((rows, n_features), dtype=np.float64)
        try:
            call_s = _median_call_s(call, sample, clock)
        except Exception:
            break
        if call_s > threshold_s:
            if limit == 0:
                limit_s = call_s
            break
        limit, limit_s = rows, call_s
        if rows == max_rows:
            break
        rows = min(rows * 2, max_rows)
    return InlineLimit(limit, handoff_s, limit_s)


def _median_call_s(call: Callable[[Any], Any], sample: Any, clock: Callable[[], float]) -> float:
    times = []
    for _ in range(_REPEATS):
        started = clock()
        call(sample)
        times.append(clock() - started)
    return statistics.median(times)
