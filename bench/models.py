"""The bench's two models, their request bodies, and the raw in-process ``predict`` rate.

Both are trained on the same ``make_classification`` data (20 features, fixed seed), so every
run of the bench serves the same models: a RandomForestClassifier (100 trees) and a
LogisticRegression. They go into a model store with :meth:`ModelStore.save`, which the service
serves as it is and whose artifacts the tutorial Flask app loads with ``joblib.load``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from typing import Final

import numpy as np
import orjson
from numpy.typing import NDArray
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from bench.catalog import LOGREG
from bench.catalog import RANDOM_FOREST
from service.store import ARTIFACT_FILE
from service.store import ModelStore

__all__ = [
    "N_FEATURES",
    "SEED",
    "TRAINERS",
    "dataset",
    "prepare_store",
    "raw_rows_per_s",
    "request_body",
]

N_FEATURES: Final = 20
SEED: Final = 0
# Enough rows that the forest's trees are deep (as fitted models in the wild are); fits in ~2 s.
N_SAMPLES: Final = 5000


def dataset() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """The training data, identical on every run."""
    X, y = make_classification(
        n_samples=N_SAMPLES, n_features=N_FEATURES, n_informative=10, random_state=SEED
    )
    return X, y


def _random_forest(X: NDArray[np.float64], y: NDArray[np.int64]) -> Any:
    return RandomForestClassifier(n_estimators=100, random_state=SEED).fit(X, y)


def _logreg(X: NDArray[np.float64], y: NDArray[np.int64]) -> Any:
    return LogisticRegression(max_iter=1000).fit(X, y)


TRAINERS: Final[dict[str, Callable[[NDArray[np.float64], NDArray[np.int64]], Any]]] = {
    RANDOM_FOREST: _random_forest,
    LOGREG: _logreg,
}


def prepare_store(root: Path, models: Sequence[str]) -> dict[str, Path]:
    """Train ``models`` into the store at ``root`` unless they are there; return artifact paths.

    A model that already has a version (an earlier run's ``--model-store``) is reused: training
    is deterministic, so it is the same model.
    """
    store = ModelStore(root)
    X, y = dataset()
    paths: dict[str, Path] = {}
    for name in models:
        versions = store.versions(name)
        if versions:
            version = versions[-1]
        else:
            # joblib: the tutorial Flask app loads the same file with joblib.load.
            model = TRAINERS[name](X, y)
            version = store.save(model, name, format="joblib").version
        paths[name] = root / name / str(version) / ARTIFACT_FILE
    return paths


def request_body(rows: int) -> bytes:
    """``{"features": [[...20 floats...], ...]}`` with the first ``rows`` rows of the data."""
    X, _ = dataset()
    return orjson.dumps({"features": X[:rows].tolist()})


def raw_rows_per_s(model: Any, rows: int, *, duration_s: float = 1.0) -> float:
    """Rows per second of ``model.predict`` on ``rows``-row batches in this process.

    The median of five timing windows that together last about ``duration_s``, after one
    warm-up call.
    """
    X, _ = dataset()
    batch = X[:rows]
    model.predict(batch)
    window_s = duration_s / 5
    rates: list[float] = []
    for _ in range(5):
        calls = 0
        start = time.perf_counter()
        while True:
            model.predict(batch)
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= window_s:
                break
        rates.append(calls * rows / elapsed)
    return statistics.median(rates)
