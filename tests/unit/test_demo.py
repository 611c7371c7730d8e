"""Tests for service.demo: the iris, diabetes and loans demo models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes
from sklearn.datasets import load_iris

from service.demo import DEMO_MODELS
from service.demo import build_demo
from service.demo import loans_table
from service.store import Manifest
from service.store import ModelStore
from service.store.features import Feature


@pytest.fixture(name="built", scope="module")
def _built(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelStore, list[Manifest]]:
    """One store with the demo models, trained once for the whole module (training is slow)."""
    store = ModelStore(tmp_path_factory.mktemp("demo") / "store")
    return store, build_demo(store)


@pytest.fixture(name="demo_store", scope="module")
def _demo_store(built: tuple[ModelStore, list[Manifest]]) -> ModelStore:
    return built[0]


@pytest.fixture(name="manifests", scope="module")
def _manifests(built: tuple[ModelStore, list[Manifest]]) -> dict[str, Manifest]:
    return {manifest.name: manifest for manifest in built[1]}


def test_writes_every_model(demo_store: ModelStore) -> None:
    """A fresh store gets version 1 of every demo model."""
    assert demo_store.names() == ["diabetes", "iris", "loans"]
    assert [demo_store.versions(name) for name in DEMO_MODELS] == [[1], [1], [1]]


def test_returns_written_manifests(built: tuple[ModelStore, list[Manifest]]) -> None:
    """build_demo returns the manifests it wrote, in DEMO_MODELS order."""
    store, manifests = built

    assert [store.read_manifest(name, 1) for name in DEMO_MODELS] == manifests


def test_iris_manifest(manifests: dict[str, Manifest]) -> None:
    """The iris manifest describes a 3-class classifier over the four named measurements."""
    iris = manifests["iris"]

    assert (
        iris.task,
        iris.n_features,
        iris.classes,
        iris.outputs,
    ) == ("classification", 4, (0, 1, 2), ("predict", "predict_proba"))
    assert iris.feature_names == ("sepal_length", "sepal_width", "petal_length", "petal_width")


def test_diabetes_manifest(manifests: dict[str, Manifest]) -> None:
    """The diabetes manifest describes a regressor over the ten named features."""
    diabetes = manifests["diabetes"]

    assert (
        diabetes.task,
        diabetes.n_features,
        diabetes.classes,
        diabetes.outputs,
    ) == ("regression", 10, None, ("predict",))
    assert (diabetes.feature_names) == (
        "age",
        "sex",
        "bmi",
        "bp",
        "s1",
        "s2",
        "s3",
        "s4",
        "s5",
        "s6",
    )


def test_loans_manifest(manifests: dict[str, Manifest]) -> None:
    """The loans manifest describes a two-class classifier over seven typed columns."""
    loans = manifests["loans"]

    assert (loans.task, loans.n_features, loans.classes, loans.outputs, loans.format) == (
        "classification",
        7,
        ("approved", "declined"),
        ("predict", "predict_proba"),
        "skops",
    )
    assert loans.features is not None
    assert loans.features.features == (
        Feature(
            "purpose",
            "string",
            categories=("business", "car", "education", "home", "medical"),
        ),
        Feature(
            "employment",
            "string",
            nullable=True,
            categories=("retired", "salaried", "self-employed", "unemployed"),
        ),
        Feature("owns_home", "bool"),
        Feature("age", "int"),
        Feature("income", "float", nullable=True),
        Feature("loan_amount", "float"),
        Feature("open_accounts", "int", nullable=True),
    )
    assert loans.feature_names == loans.features.names


def test_loans_table_has_missing_values() -> None:
    """The loans table misses some employment, income and open_accounts values, and no others."""
    table, outcome = loans_table()

    missing = table.isna().any()
    assert list(table.columns) == list(missing.index)
    assert sorted(missing[missing].index) == ["employment", "income", "open_accounts"]
    assert (len(table), sorted(set(outcome))) == (2000, ["approved", "declined"])


def test_loans_loads_with_pickles_refused(demo_store: ModelStore) -> None:
    """The loans pipeline loads from a store that refuses pickles and predicts on a DataFrame."""
    refusing = ModelStore(demo_store.root, allow_pickle=False)
    rows = pd.DataFrame(
        {
            "purpose": ["car", "business", "home"],
            "employment": ["salaried", np.nan, "unemployed"],
            "owns_home": [True, False, False],
            "age": [35, 52, 23],
            "income": [64000.0, np.nan, 18000.0],
            "loan_amount": [12000.0, 40000.0, 25000.0],
            "open_accounts": [2.0, 5.0, np.nan],
        }
    )

    model = refusing.load("loans", 1).model

    assert model.predict(rows).tolist() == ["approved", "declined", "declined"]
    assert model.predict_proba(rows).shape == (3, 2)


def test_iris_predicts_setosa(demo_store: ModelStore) -> None:
    """The loaded iris model classifies the first iris sample as class 0 (setosa)."""
    model = demo_store.load("iris", 1).model

    assert model.predict([[5.1, 3.5, 1.4, 0.2]]).tolist() == [0]


def test_iris_is_a_100_tree_forest(demo_store: ModelStore) -> None:
    """The iris model is a random forest of 100 trees, as the README says."""
    model = demo_store.load("iris", 1).model

    assert (type(model).__name__, len(model.estimators_)) == ("RandomForestClassifier", 100)


def test_idempotent(demo_store: ModelStore) -> None:
    """A second build writes nothing and leaves every model at version 1."""
    assert build_demo(demo_store) == []
    assert [demo_store.versions(name) for name in DEMO_MODELS] == [[1], [1], [1]]


def test_keeps_existing_model(demo_store: ModelStore, tmp_path: Path) -> None:
    """A demo name that already has a version is skipped; the others are still built."""
    store = ModelStore(tmp_path / "store")
    store.save(demo_store.load("iris", 1).model, "iris")

    written = build_demo(store)

    assert [manifest.name for manifest in written] == ["diabetes", "loans"]
    assert store.versions("iris") == [1]


def test_deterministic(demo_store: ModelStore, tmp_path: Path) -> None:
    """Two fresh stores give identical predictions on the iris, diabetes and loans data."""
    other = ModelStore(tmp_path / "store")
    build_demo(other)
    iris_x = load_iris(return_X_y=True)[0]
    diabetes_x = load_diabetes(return_X_y=True)[0]

    for name, features in (("iris", iris_x), ("diabetes", diabetes_x)):
        first = demo_store.load(name, 1).model
        second = other.load(name, 1).model
        np.testing.assert_array_equal(first.predict(features), second.predict(features))
    np.testing.assert_array_equal(
        demo_store.load("iris", 1).model.predict_proba(iris_x),
        other.load("iris", 1).model.predict_proba(iris_x),
    )
    loans_x = loans_table()[0]
    np.testing.assert_array_equal(
        demo_store.load("loans", 1).model.predict_proba(loans_x),
        other.load("loans", 1).model.predict_proba(loans_x),
    )
