"""Micro-benchmark of the tree engine: per-call time at batch 1, 32 and 256, side by side.

Run as ``python -m bench.trees``. It trains the bench's RandomForest (100 trees, 20 features, the
recipe of the bench's models module) and times, in this process, scikit-learn's ``predict``, the
tree engine's ``predict`` and each of the engine's walks forced at every batch size (the C walk
when this installation has it, the stacked numpy walk, scikit-learn's per-tree Cython), plus
treelite's GTIL if treelite is installed. Every candidate's answers are checked against
scikit-learn's first. Times are CPU time per call (all of the process's threads), the median of
several windows: on a shared machine wall time mostly measures the neighbours.
"""

from __future__ import annotations

import pickle
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from service.engines.trees import COMPILED
from service.engines.trees import TreeEngine
from service.engines.trees import tree_predictor

BATCHES = (1, 32, 256)
# Each timing is the median of this many windows of about WINDOW_S seconds.
WINDOWS = 5
WINDOW_S = 0.2


def _model() -> tuple[Any, NDArray[np.float64]]:
    X, y = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y), X


def _per_call_us(predict: Callable[[NDArray[np.float64]], Any], rows: NDArray[np.float64]) -> float:
    predict(rows)
    medians: list[float] = []
    for _ in range(WINDOWS):
        calls = 0
        start = time.process_time()
        while (elapsed := time.process_time() - start) < WINDOW_S:
            predict(rows)
            calls += 1
        medians.append(elapsed / calls * 1e6)
    return statistics.median(medians)


def _candidates(model: Any) -> dict[str, Callable[[NDArray[np.float64]], Any]]:
    numpy_walks = TreeEngine(model, compiled=False)
    predict = tree_predictor(model)
    assert predict is not None, "the engine did not verify on the bench forest"
    candidates: dict[str, Callable[[NDArray[np.float64]], Any]] = {
        "sklearn predict": model.predict,
        "engine predict": predict,
    }
    if COMPILED:
        compiled = TreeEngine(model, compiled=True)
        candidates["C walk"] = lambda rows: compiled._predict(rows, "compiled")
    candidates["stacked walk"] = lambda rows: numpy_walks._predict(rows, "stacked")
    candidates["per-tree tree_.predict"] = lambda rows: numpy_walks._predict(rows, "per_tree")
    try:
        import treelite
        import treelite.gtil
    except ImportError:
        return candidates
    imported = treelite.sklearn.import_model(model)

    def gtil(rows: NDArray[np.float64]) -> Any:
        proba = treelite.gtil.predict(imported, rows.astype(np.float32)).reshape(len(rows), -1)
        return model.classes_.take(np.argmax(proba, axis=1))

    candidates["treelite 4 gtil"] = gtil
    return candidates


def main() -> None:
    model, X = _model()
    engine = TreeEngine(model)
    model_bytes = len(pickle.dumps(model))
    print(
        f"RandomForestClassifier: {len(model.estimators_)} trees, "
        f"{sum(e.tree_.node_count for e in model.estimators_)} nodes, "
        f"pickled {model_bytes / 2**20:.1f} MiB; engine arrays {engine.nbytes / 2**20:.1f} MiB "
        f"({engine.nbytes / model_bytes:.2f}x)"
    )
    candidates = _candidates(model)
    print(f"{'CPU us per call':<24}" + "".join(f"{f'batch {b}':>12}" for b in BATCHES))
    for name, predict in candidates.items():
        cells = []
        for batch in BATCHES:
            rows = X[:batch]
            exact = np.array_equal(predict(rows), model.predict(rows))
            us = _per_call_us(predict, rows)
            cells.append(f"{us:9.0f}{'' if exact else '!'}")
        print(f"{name:<24}" + "".join(f"{cell:>12}" for cell in cells))
    print("('!' marks answers that differ from scikit-learn's)")


if __name__ == "__main__":
    main()
