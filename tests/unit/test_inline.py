"""Which batches run on the event loop: bounded models whose measured call fits the budget."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.preprocessing import StandardScaler

from service.engines.inline import LOOP_STALL_BUDGET_S
from service.engines.inline import bounded
from service.engines.inline import inline_limit
from tests.fakes import SumModel

US = 1e-6


class FakeClock:
    """A clock that only the fake model below moves: ``per_row_s`` for each row it is given."""

    def __init__(self, per_row_s: float) -> None:
        self.now = 0.0
        self.per_row_s = per_row_s
        self.sizes: list[int] = []

    def __call__(self) -> float:
        return self.now

    def call(self, rows: NDArray[Any]) -> NDArray[Any]:
        self.sizes.append(len(rows))
        self.now += self.per_row_s * len(rows)
        summed: NDArray[Any] = rows.sum(axis=1)
        return summed


def fitted(model: Any) -> Any:
    X = np.arange(40.0).reshape(20, 2)
    return model.fit(X, np.arange(20) % 2)


def test_scikit_learn_estimators_and_pipelines_are_bounded() -> None:
    """A scikit-learn estimator, and a Pipeline of only scikit-learn steps, may run inline."""
    assert bounded(fitted(LogisticRegression()))
    assert bounded(fitted(make_pipeline(StandardScaler(), LogisticRegression())))


def test_custom_class_is_not_bounded() -> None:
    """A model class of the user's own always runs in a worker thread."""
    assert not bounded(SumModel(2))


def test_step_holding_a_user_function_is_not_bounded() -> None:
    """A Pipeline with a FunctionTransformer around a function always runs in a worker thread."""
    model = fitted(make_pipeline(FunctionTransformer(np.log1p), LogisticRegression()))

    assert not bounded(model)


def test_limit_is_the_largest_doubling_within_the_budget() -> None:
    """With calls at 10 us a row and a 45 us budget, batches of up to 4 rows run inline."""
    clock = FakeClock(10 * US)

    limit = inline_limit(clock.call, 3, 64, 45 * US, clock=clock)

    assert 4 == limit.rows
    assert pytest.approx(40 * US) == limit.call_s
    assert [1, 2, 4, 8] == sorted(set(clock.sizes))


def test_limit_stops_at_max_rows_even_when_not_a_power_of_two() -> None:
    """The last step is max_rows itself, and the limit never exceeds it."""
    clock = FakeClock(0.01 * US)

    limit = inline_limit(clock.call, 3, 48, 45 * US, clock=clock)

    assert 48 == limit.rows
    assert [1, 2, 4, 8, 16, 32, 48] == sorted(set(clock.sizes))


def test_call_over_the_budget_runs_in_threads() -> None:
    """A model over the budget on one row gets limit 0, with its one-row time."""
    clock = FakeClock(100 * US)

    limit = inline_limit(clock.call, 3, 64, 45 * US, clock=clock)

    assert 0 == limit.rows
    assert pytest.approx(100 * US) == limit.call_s


def test_refused_zero_rows_run_in_threads() -> None:
    """A model that refuses the all-zero sample gets limit 0 and call_s 0."""

    def refuse(rows: NDArray[Any]) -> NDArray[Any]:
        raise ValueError("zeros are not a valid category")

    limit = inline_limit(refuse, 3, 64, 45 * US)

    assert (0, 0.0) == (limit.rows, limit.call_s)


def test_default_budget_is_the_loop_stall_budget() -> None:
    """Without a budget, a call at 1 us a row fits up to the budget's row count, no further."""
    clock = FakeClock(1 * US)

    limit = inline_limit(clock.call, 3, 4096, clock=clock)

    assert 256 == limit.rows
    assert limit.call_s <= LOOP_STALL_BUDGET_S
