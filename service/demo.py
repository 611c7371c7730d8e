"""The demo models, trained deterministically: iris and diabetes on data scikit-learn ships,
loans on a generated table of strings, booleans, numbers and missing values.

They are written as skops, so a server that refuses pickles (the image) serves them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.datasets import load_iris
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.preprocessing import StandardScaler

from service.store import Manifest
from service.store import ModelStore

__all__ = ["DEMO_MODELS", "EMPLOYMENTS", "PURPOSES", "build_demo", "loans_table"]

DEMO_MODELS: Final[tuple[str, ...]] = ("iris", "diabetes", "loans")

IRIS_FEATURES: Final = ("sepal_length", "sepal_width", "petal_length", "petal_width")
DIABETES_FEATURES: Final = ("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


def _train_iris() -> Any:
    features, target = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=100, random_state=0).fit(features, target)


def _train_diabetes() -> Any:
    features, target = load_diabetes(return_X_y=True)
    return GradientBoostingRegressor(random_state=0).fit(features, target)


PURPOSES: Final = ("business", "car", "education", "home", "medical")
EMPLOYMENTS: Final = ("retired", "salaried", "self-employed", "unemployed")
_LOANS_ROWS: Final = 2000
_LOANS_SEED: Final = 15


def loans_table(
    rows: int = _LOANS_ROWS, seed: int = _LOANS_SEED
) -> tuple[pd.DataFrame, NDArray[np.str_]]:
    """A generated table of loan applications and their "approved"/"declined" outcomes.

    About 5% of ``employment``, ``income`` and ``open_accounts`` are missing (NaN), so
    ``open_accounts`` is a float column although it counts accounts.
    """
    rng = np.random.default_rng(seed)

    def with_holes(values: Any) -> Any:
        values[rng.random(rows) < 0.05] = np.nan
        return values

    table = pd.DataFrame(
        {
            "purpose": rng.choice(PURPOSES, rows),
            "employment": with_holes(
                rng.choice(EMPLOYMENTS, rows, p=[0.15, 0.6, 0.15, 0.1]).astype(object)
            ),
            "owns_home": rng.random(rows) < 0.4,
            "age": rng.integers(18, 81, rows),
            "income": with_holes(np.round(rng.lognormal(10.6, 0.5, rows), 2)),
            "loan_amount": np.round(rng.lognormal(9.5, 0.7, rows), 2),
            "open_accounts": with_holes(rng.poisson(3, rows).astype(np.float64)),
        }
    )
    # A credit score by rule of thumb, plus noise; missing values count against the applicant.
    score = (
        np.log(table["income"].fillna(20_000) / table["loan_amount"])
        + 0.8 * table["owns_home"]
        - 1.5 * (table["employment"] == "unemployed")
        - 0.4 * (table["purpose"] == "business")
        + 0.01 * (table["age"] - 40)
        - 0.1 * table["open_accounts"].fillna(6)
        + rng.normal(0.0, 0.7, rows)
    )
    return table, np.where(score > 0.8, "approved", "declined")


def _train_loans() -> Any:
    table, outcome = loans_table()
    columns = ColumnTransformer(
        [
            (
                "categories",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("encode", OneHotEncoder(handle_unknown="error")),
                    ]
                ),
                ["purpose", "employment"],
            ),
            (
                "numbers",
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                ["age", "income", "loan_amount", "open_accounts"],
            ),
            ("flags", "passthrough", ["owns_home"]),
        ]
    )
    model = Pipeline([("columns", columns), ("classify", LogisticRegression(max_iter=1000))])
    return model.fit(table, outcome)


# iris and diabetes are fitted on numpy arrays (no feature_names_in_, so clients may send plain
# rows); the names reach the manifest explicitly instead. loans is fitted on a DataFrame.
_DEMOS: Final[dict[str, tuple[Callable[[], Any], tuple[str, ...] | None]]] = {
    "iris": (_train_iris, IRIS_FEATURES),
    "diabetes": (_train_diabetes, DIABETES_FEATURES),
    "loans": (_train_loans, None),
}


def _loans_example() -> pd.DataFrame:
    # The table holds open_accounts as floats only because NaN needs a float column; the example
    # the schema is inferred from says they are whole numbers.
    return loans_table()[0].astype({"open_accounts": "Int64"})


_EXAMPLES: Final[dict[str, Callable[[], pd.DataFrame]]] = {"loans": _loans_example}


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
        example = _EXAMPLES[name]() if name in _EXAMPLES else None
        written.append(store.save(train(), name, feature_names=feature_names, example=example))
    return written
