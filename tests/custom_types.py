"""Types the trust tests store, importable by a server under test as ``tests.custom_types``.

``Clip`` stands for a user's own transformer (trusted only when listed); ``MarkerOnLoad`` and
:func:`crafted_pickle` stand for an attacker's artifact: each leaves a marker file behind if, and
only if, loading ran code the artifact chose.
"""

from __future__ import annotations

import pathlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.base import TransformerMixin

CLIP = "tests.custom_types.Clip"
MARKER_ON_LOAD = "tests.custom_types.MarkerOnLoad"


class Clip(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Clips every feature to ``[low, high]``."""

    def __init__(self, low: float = -1.0, high: float = 1.0) -> None:
        self.low = low
        self.high = high

    def fit(self, X: NDArray[Any], y: object = None) -> Clip:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X: NDArray[Any]) -> NDArray[Any]:
        clipped: NDArray[Any] = np.clip(np.asarray(X, dtype=np.float64), self.low, self.high)
        return clipped


class MarkerOnLoad:
    """Creates the file at ``path`` when it is rebuilt from its state (skops or pickle)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["path"]).touch()
        self.__dict__.update(state)


class _TouchWhenUnpickled:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        # Unpickling calls pathlib.Path.touch(marker): standard-library code, so the pickle
        # needs nothing from the tests to run in any process.
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def crafted_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when it is unpickled (and unpickles to None)."""
    return pickle.dumps(_TouchWhenUnpickled(marker))
