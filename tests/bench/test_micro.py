"""The in-process micro-benchmark: bounded repeats, engines that decline, answers checked."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from bench.micro import BATCH_ROWS
from bench.micro import CANDIDATES
from bench.micro import Candidate
from bench.micro import Predict
from bench.micro import micro_benchmark
from bench.micro import per_call_s


def test_calls_stop_at_the_minimum_once_the_budget_is_spent() -> None:
    """With no time budget, a cell makes its minimum of timed calls plus one untimed."""
    calls: list[None] = []

    _, timed = per_call_s(lambda: calls.append(None), budget_s=0.0, min_calls=5)

    assert (timed, len(calls)) == (5, 6)


def test_calls_stop_at_the_maximum_within_the_budget() -> None:
    """With an hour's budget, a cell still stops after its maximum of calls."""
    calls: list[None] = []

    _, timed = per_call_s(lambda: calls.append(None), budget_s=3600.0, max_calls=40)

    assert (timed, len(calls)) == (40, 41)


def data() -> tuple[NDArray[np.float64], Any]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    return X, LogisticRegression().fit(X, X[:, 0] > 0)


def test_every_engine_is_timed_at_every_batch_size_against_scikit_learn() -> None:
    """One result per model, engine and batch size; a right engine matches, a wrong one not."""
    X, model = data()

    def inverted(fitted: Any) -> Predict:
        return lambda rows: ~fitted.predict(rows)

    def declines(_: Any) -> Predict | None:
        return None

    candidates: list[Candidate] = [
        *CANDIDATES,
        ("copy", lambda fitted: lambda rows: fitted.predict(rows.copy())),
        ("inverted", inverted),
        ("declines", declines),
    ]

    results = micro_benchmark({"m": model}, X, budget_s=0.0, candidates=candidates)

    by_engine = {
        engine: [
            (r.batch_rows, r.same_answers, r.per_call_s is not None)
            for r in results
            if r.engine == engine
        ]
        for engine, _ in candidates
    }
    assert by_engine == {
        "scikit-learn": [(rows, None, True) for rows in BATCH_ROWS],
        # The tree engine declines a LogisticRegression.
        "exact tree engine": [(rows, None, False) for rows in BATCH_ROWS],
        # ... and the linear engine answers it as scikit-learn does.
        "exact linear engine": [(rows, True, True) for rows in BATCH_ROWS],
        "copy": [(rows, True, True) for rows in BATCH_ROWS],
        "inverted": [(rows, False, True) for rows in BATCH_ROWS],
        "declines": [(rows, None, False) for rows in BATCH_ROWS],
    }


def test_the_reference_engine_is_scikit_learns_predict() -> None:
    """The first candidate, which the others are compared with, is the model's own predict."""
    X, model = data()
    label, factory = CANDIDATES[0]
    predict = factory(model)

    assert label == "scikit-learn"
    assert predict is not None
    assert np.array_equal(predict(X), model.predict(X))
