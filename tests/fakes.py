"""Picklable fake models for store-backed tests, importable by the server under test.

Tests save them with ``format="joblib"``: as skops, a store would refuse them as untrusted types.
A model that must be controlled from a test (``GatedModel``) looks up its gate by name in a
module-level table, because the instance the server uses is an unpickled copy.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray


class Gate:
    """Lets a test hold model calls until it opens the gate, and see when a call entered."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.calls: list[int] = []

    def open(self) -> None:
        self.opened.set()


GATES: dict[str, Gate] = {}


class SumModel:
    """A regressor answering the sum of each row; fits nothing, needs nothing."""

    def __init__(self, n_features: int) -> None:
        self.n_features_in_ = n_features

    def predict(self, X: NDArray[Any]) -> NDArray[Any]:
        result: NDArray[Any] = np.asarray(X, dtype=np.float64).sum(axis=1)
        return result


class GatedModel(SumModel):
    """SumModel whose calls wait for the test's gate named ``gate`` (at most 30 s)."""

    def __init__(self, n_features: int, gate: str) -> None:
        super().__init__(n_features)
        self.gate = gate

    def predict(self, X: NDArray[Any]) -> NDArray[Any]:
        gate = GATES[self.gate]
        gate.calls.append(len(X))
        gate.entered.set()
        gate.opened.wait(30)
        return super().predict(X)


class FailingModel(SumModel):
    """SumModel that raises ValueError for any row whose first value is negative."""

    def predict(self, X: NDArray[Any]) -> NDArray[Any]:
        if (np.asarray(X)[:, 0] < 0).any():
            raise ValueError("negative first feature")
        return super().predict(X)


class SlowModel(SumModel):
    """SumModel that takes ``delay_s`` per call (for real-server load tests)."""

    def __init__(self, n_features: int, delay_s: float) -> None:
        super().__init__(n_features)
        self.delay_s = delay_s

    def predict(self, X: NDArray[Any]) -> NDArray[Any]:
        time.sleep(self.delay_s)
        return super().predict(X)


class WrongRowsModel(SumModel):
    """Answers one row more than it was given: a broken model the batcher must not trust."""

    def predict(self, X: NDArray[Any]) -> NDArray[Any]:
        result = super().predict(X)
        return np.concatenate([result, result[:1]])


class HangingModel(SumModel):
    """Hangs for ``hang_s`` on any batch holding a row whose first value is 999."""

    def __init__(self, n_features: int, hang_s: float) -> None:
        super().__init__(n_features)
        self.hang_s = hang_s

    def predict(self, X: NDArray[Any]) -> NDArray[Any]:
        if (np.asarray(X)[:, 0] == 999).any():
            time.sleep(self.hang_s)
        return super().predict(X)


class CountingModel(SumModel):
    """Appends each call's row count to ``calls_path`` (readable by the test), then sleeps."""

    def __init__(self, n_features: int, calls_path: str, delay_s: float) -> None:
        super().__init__(n_features)
        self.calls_path = calls_path
        self.delay_s = delay_s

    def predict(self, X: NDArray[Any]) -> NDArray[Any]:
        with open(self.calls_path, "a") as calls:  # noqa: PTH123 -- a plain append, per call
            calls.write(f"{len(X)}\n")
        time.sleep(self.delay_s)
        return super().predict(X)
