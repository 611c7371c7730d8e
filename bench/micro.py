"""The in-process micro-benchmark: the time of one ``predict`` call per model, engine and batch.

No HTTP, no server: each candidate engine turns a fitted model into a predict callable, which
is timed call by call on the bench's own rows at a few batch sizes. It shows what a model call
costs the service before any framework does, and what a faster engine would save.

An engine is one ``(label, factory)`` entry of :data:`CANDIDATES`: the factory takes a fitted
model and returns a callable ``predict(X) -> answers``, or None when it does not handle that
model. The first candidate (scikit-learn's own ``predict``) is the reference: every other
engine's answers are compared with it on each batch, and its speed-up over it is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from typing import Final

import numpy as np
from numpy.typing import NDArray

from service.engines import tree_predictor
from service.engines.linear import linear_predictor

__all__ = [
    "BATCH_ROWS",
    "CANDIDATES",
    "Candidate",
    "MicroResult",
    "Predict",
    "micro_benchmark",
    "per_call_s",
]

Predict = Callable[[NDArray[np.float64]], Any]
Candidate = tuple[str, Callable[[Any], Predict | None]]

BATCH_ROWS: Final = (1, 32, 256)
# Bounds of each cell: at least this many calls (a median needs a few), at most this many.
MIN_CALLS: Final = 5
MAX_CALLS: Final = 2000


def _scikit_learn(model: Any) -> Predict:
    predict: Predict = model.predict
    return predict


# One line per engine. The first is the reference the others are checked and compared against.
CANDIDATES: Final[list[Candidate]] = [
    ("scikit-learn", _scikit_learn),
    ("exact tree engine", tree_predictor),
    ("exact linear engine", linear_predictor),
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MicroResult:
    """One engine on one model at one batch size."""

    model: str
    engine: str
    batch_rows: int
    per_call_s: float | None
    """Median seconds per call; None when the engine does not handle the model."""
    calls: int
    same_answers: bool | None
    """Whether the answers equal the reference engine's on this batch; None for the reference
    itself and for a model the engine does not handle."""


def per_call_s(
    call: Callable[[], object],
    *,
    budget_s: float,
    min_calls: int = MIN_CALLS,
    max_calls: int = MAX_CALLS,
) -> tuple[float, int]:
    """The median time of ``call()`` and how many calls it took, after one untimed call.

    Calls are timed one by one until ``budget_s`` has passed (but at least ``min_calls``) or
    ``max_calls`` were made.
    """
    call()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < max_calls and (
        len(times) < min_calls or time.perf_counter() - started < budget_s
    ):
        before = time.perf_counter()
        call()
        times.append(time.perf_counter() - before)
    return statistics.median(times), len(times)


def micro_benchmark(
    models: Mapping[str, Any],
    X: NDArray[np.float64],
    *,
    budget_s: float,
    candidates: Sequence[Candidate] = CANDIDATES,
    batch_rows: Sequence[int] = BATCH_ROWS,
) -> list[MicroResult]:
    """Time every candidate on every model at every batch size (the first ``n`` rows of ``X``)."""
    results: list[MicroResult] = []
    for name, model in models.items():
        predicts = [(engine, factory(model)) for engine, factory in candidates]
        reference = predicts[0][1]
        for index, (engine, predict) in enumerate(predicts):
            for rows in batch_rows:
                batch = X[:rows]
                seconds: float | None = None
                calls = 0
                same: bool | None = None
                if predict is not None and reference is not None:
                    if index:
                        same = bool(
                            np.array_equal(np.asarray(predict(batch)), np.asarray(reference(batch)))
                        )
                    seconds, calls = per_call_s(partial(predict, batch), budget_s=budget_s)
                results.append(
                    MicroResult(
                        model=name,
                        engine=engine,
                        batch_rows=rows,
                        per_call_s=seconds,
                        calls=calls,
                        same_answers=same,
                    )
                )
    return results
