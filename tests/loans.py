"""A table model for tests: loan decisions from typed columns with missing values.

The same contract as the ``loans`` demo model: a Pipeline whose ColumnTransformer one-hot
encodes the strings (unknown categories raise), imputes and scales the numbers and passes the
flag through, then a LogisticRegression with classes "approved" and "declined".
"""

from __future__ import annotations

import dataclasses
from typing import Any
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.preprocessing import StandardScaler

from service.store import MANIFEST_FILE
from service.store import Manifest
from service.store import ModelStore
from service.store.features import Feature
from service.store.features import FeatureSchema

PURPOSES: Final = ("business", "car", "education", "home", "medical")
EMPLOYMENTS: Final = ("retired", "salaried", "self-employed", "unemployed")

LOANS_SCHEMA: Final = FeatureSchema(
    (
        Feature("purpose", "string", categories=PURPOSES),
        Feature("employment", "string", nullable=True, categories=EMPLOYMENTS),
        Feature("owns_home", "bool"),
        Feature("age", "int"),
        Feature("income", "float", nullable=True),
        Feature("loan_amount", "float"),
        Feature("open_accounts", "int", nullable=True),
    )
)

ROWS: Final[list[dict[str, Any]]] = [
    {
        "purpose": "car",
        "employment": "salaried",
        "owns_home": True,
        "age": 41,
        "income": 52000.0,
        "loan_amount": 12000.0,
        "open_accounts": 3,
    },
    {
        "purpose": "medical",
        "employment": None,
        "owns_home": False,
        "age": 23,
        "income": None,
        "loan_amount": 30000.5,
        "open_accounts": None,
    },
    {
        "purpose": "business",
        "employment": "self-employed",
        "owns_home": False,
        "age": 35,
        "income": 18000,
        "loan_amount": 45000.0,
        "open_accounts": 7,
    },
]
"""Valid rows as objects: complete, with every nullable value missing, with an int income."""


def training_frame(n_rows: int = 400, seed: int = 0) -> tuple[pd.DataFrame, NDArray[Any]]:
    """A random training table with some missing values, and its labels."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "purpose": rng.choice(PURPOSES, n_rows),
            "employment": pd.array(
                [None if rng.random() < 0.1 else e for e in rng.choice(EMPLOYMENTS, n_rows)],
                dtype="str",
            ),
            "owns_home": rng.random(n_rows) < 0.4,
            "age": rng.integers(18, 80, n_rows),
            "income": np.where(rng.random(n_rows) < 0.1, np.nan, rng.normal(40000, 15000, n_rows)),
            "loan_amount": rng.uniform(1000, 50000, n_rows),
            "open_accounts": np.where(
                rng.random(n_rows) < 0.1, np.nan, rng.integers(0, 10, n_rows)
            ),
        }
    )
    score = (
        frame["loan_amount"] / 50000
        - frame["income"].fillna(40000) / 80000
        + np.where(frame["employment"] == "unemployed", 0.8, 0.0)
        - frame["owns_home"] * 0.3
    )
    target = np.where(score > 0.2, "declined", "approved")
    return frame, target


def train_loans() -> Pipeline:
    """The loans pipeline, fitted on :func:`training_frame`."""
    frame, target = training_frame()
    columns = ColumnTransformer(
        [
            (
                "categories",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="error"),
                ),
                ["purpose", "employment"],
            ),
            (
                "numbers",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                ["age", "income", "loan_amount", "open_accounts"],
            ),
            ("flags", "passthrough", ["owns_home"]),
        ]
    )
    return Pipeline([("columns", columns), ("classify", LogisticRegression())]).fit(frame, target)


def add_loans(store: ModelStore, model: Any | None = None) -> Manifest:
    """Register the loans model with its feature schema, as a joblib version."""
    manifest = store.save(model if model is not None else train_loans(), "loans", format="joblib")
    manifest = dataclasses.replace(manifest, features=LOANS_SCHEMA)
    (store.root / "loans" / str(manifest.version) / MANIFEST_FILE).write_bytes(manifest.to_json())
    return manifest
