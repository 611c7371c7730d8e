"""The demo models, iris and diabetes, trained deterministically on data scikit-learn ships.

They are written as skops, so a server that refuses pickles (the image) serves them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Final

from sklearn.datasets import load_diabetes
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.ensemble import RandomForestClassifier

from service.store import Manifest
from service.store import ModelStore

__all__ = ["DEMO_MODELS", "build_demo"]

DEMO_MODELS: Final[tuple[str, ...]] = ("iris", "diabetes")

IRIS_FEATURES: Final = ("sepal_length", "sepal_width", "petal_length", "petal_width")
DIABETES_FEATURES: Final = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def _train_iris() -> Any:
    features, target = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(features, target)


def _train_diabetes() -> Any:
    features, target = load_diabetes(return_X_y=True)
    return GradientBoostingRegressor(random_state=0).fit(features, target)


# Fitted on numpy arrays (no feature_names_in_, so clients may send plain rows); the names
# reach the manifest explicitly instead.
_DEMOS: Final[dict[str, tuple[Callable[[], Any], tuple[str, ...]]]] = {
    "iris": (_train_iris, IRIS_FEATURES),
    "diabetes": (_train_diabetes, DIABETES_FEATURES),
}


def build_demo(store: ModelStore) -> list[Manifest]:
    """Train and register each demo model that has no version in ``store`` yet.

    Idempotent: a model with any version (even one an operator registered) is left alone.
    The same scikit-learn version always trains the same models.

    Returns:
        The manifests written, in :data:`DEMO_MODELS` order; [] if every demo model existed.

    Raises:
        StoreError: If a model cannot be written to the store.
    """
    written: list[Manifest] = []
    for name in DEMO_MODELS:
        if store.versions(name):
            continue
        train, feature_names = _DEMOS[name]
        written.append(store.save(train(), name, feature_names=feature_names))
    return written
