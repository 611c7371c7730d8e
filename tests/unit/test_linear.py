"""The linear engine answers bit for bit as scikit-learn does, or scikit-learn serves instead."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from typing import Literal

import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import ElasticNet
from sklearn.linear_model import Lasso
from sklearn.linear_model import LinearRegression
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model import Ridge
from sklearn.linear_model import RidgeClassifier
from sklearn.linear_model import RidgeClassifierCV
from sklearn.linear_model import RidgeCV
from sklearn.linear_model import SGDClassifier
from sklearn.linear_model import SGDRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from service.engines import ENGINE_LINEAR
from service.engines import LinearEngine
from service.engines import linear
from service.engines.linear import linear_probe_rows
from service.engines.linear import verify_linear
from service.engines.trees import UnsupportedModelError
from service.engines.trees import select_engine
from service.settings import Settings
from service.store import Manifest
from service.store import Output

# Bounded so the whole module runs in seconds; each example fits one small model.
EXAMPLES = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)

Factory = Callable[[bool, int], Any]

# SGD runs a few epochs without a tolerance, so it fits fast and never warns of convergence.
CLASSIFIERS: dict[str, Factory] = {
    "logistic": lambda icpt, seed: LogisticRegression(fit_intercept=icpt, max_iter=1000),
    "ridge": lambda icpt, seed: RidgeClassifier(fit_intercept=icpt),
    "ridge-cv": lambda icpt, seed: RidgeClassifierCV(fit_intercept=icpt),
    "sgd-log": lambda icpt, seed: SGDClassifier(
        loss="log_loss", fit_intercept=icpt, max_iter=5, tol=None, random_state=seed
    ),
    "sgd-huber": lambda icpt, seed: SGDClassifier(
        loss="modified_huber", fit_intercept=icpt, max_iter=5, tol=None, random_state=seed
    ),
    "sgd-hinge": lambda icpt, seed: SGDClassifier(
        fit_intercept=icpt, max_iter=5, tol=None, random_state=seed
    ),
}
REGRESSORS: dict[str, Factory] = {
    "linear": lambda icpt, seed: LinearRegression(fit_intercept=icpt),
    "ridge": lambda icpt, seed: Ridge(fit_intercept=icpt),
    "ridge-cv": lambda icpt, seed: RidgeCV(fit_intercept=icpt),
    "lasso": lambda icpt, seed: Lasso(alpha=0.01, fit_intercept=icpt),
    "elastic-net": lambda icpt, seed: ElasticNet(alpha=0.01, fit_intercept=icpt),
    "sgd": lambda icpt, seed: SGDRegressor(
        fit_intercept=icpt, max_iter=5, tol=None, random_state=seed
    ),
}
LABELS = {
    "int": np.array([3, -1, 7, 0, 12]),
    "str": np.array(["setosa", "b", "a", "zz", "c"]),
}


def _features(seed: int, n_features: int) -> NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    scales = rng.choice([0.1, 1.0, 30.0], size=n_features)
    return np.asarray(rng.normal(size=(80, n_features)) * scales, dtype=np.float64)


def _rows(seed: int, n_rows: int, n_features: int, order: Literal["C", "F"]) -> NDArray[np.float64]:
    """Rows at mixed scales (zeros to ~1e6), both signs, in C or Fortran order."""
    rng = np.random.default_rng(seed + 1)
    rows = rng.normal(size=(n_rows, n_features)) * rng.choice(
        [0.0, 1e-3, 1.0, 100.0, 1e6], size=(n_rows, n_features)
    )
    return np.asarray(rows, dtype=np.float64, order=order)


def _assert_same(engine: LinearEngine, model: Any, rows: NDArray[np.float64]) -> None:
    """predict (and predict_proba where the model has it) equal scikit-learn's bit for bit."""
    pairs = [(engine.predict, model.predict)]
    if hasattr(model, "predict_proba"):
        pairs.append((engine.predict_proba, model.predict_proba))
    for ours, theirs in pairs:
        got, expected = ours(rows), theirs(rows)
        assert (expected.dtype, expected.shape) == (got.dtype, got.shape)
        if expected.dtype.kind == "f":
            assert np.ascontiguousarray(expected).tobytes() == np.ascontiguousarray(got).tobytes()
        else:
            assert np.array_equal(expected, got)


@EXAMPLES
@given(
    kind=st.sampled_from(sorted(CLASSIFIERS)),
    n_classes=st.integers(2, 4),
    labels=st.sampled_from(sorted(LABELS)),
    n_features=st.integers(1, 8),
    intercept=st.booleans(),
    pipeline=st.booleans(),
    n_rows=st.integers(1, 300),
    order=st.sampled_from(["C", "F"]),
    seed=st.integers(0, 2**16),
)
def test_classifiers_match_sklearn(
    kind: str,
    n_classes: int,
    labels: str,
    n_features: int,
    intercept: bool,
    pipeline: bool,
    n_rows: int,
    order: Literal["C", "F"],
    seed: int,
) -> None:
    """Classifiers (binary or multiclass, any labels, alone or behind a scaler) match sklearn."""
    X = _features(seed, n_features)
    y = LABELS[labels][np.random.default_rng(seed).integers(0, n_classes, size=len(X))]
    y[:n_classes] = LABELS[labels][:n_classes]  # every class present
    estimator = CLASSIFIERS[kind](intercept, seed)
    model = make_pipeline(StandardScaler(), estimator) if pipeline else estimator
    model.fit(X, y)
    engine = LinearEngine(model)

    assert verify_linear(engine, seed) is None
    _assert_same(engine, model, _rows(seed, n_rows, n_features, order))


@EXAMPLES
@given(
    kind=st.sampled_from(sorted(REGRESSORS)),
    n_features=st.integers(1, 8),
    n_targets=st.sampled_from([None, 2]),
    intercept=st.booleans(),
    pipeline=st.booleans(),
    n_rows=st.integers(1, 300),
    order=st.sampled_from(["C", "F"]),
    seed=st.integers(0, 2**16),
)
def test_regressors_match_sklearn(
    kind: str,
    n_features: int,
    n_targets: int | None,
    intercept: bool,
    pipeline: bool,
    n_rows: int,
    order: Literal["C", "F"],
    seed: int,
) -> None:
    """Regressors (one or two targets where supported, alone or behind a scaler) match sklearn."""
    X = _features(seed, n_features)
    rng = np.random.default_rng(seed)
    y = X @ rng.normal(size=n_features) + rng.normal(size=len(X))
    if n_targets is not None and kind != "sgd":
        y = np.column_stack([y, -2.0 * y + 1.0])
    estimator = REGRESSORS[kind](intercept, seed)
    model = make_pipeline(StandardScaler(), estimator) if pipeline else estimator
    model.fit(X, y)
    engine = LinearEngine(model)

    assert verify_linear(engine, seed) is None
    _assert_same(engine, model, _rows(seed, n_rows, n_features, order))


def _logistic(n_classes: int = 2, n_features: int = 3) -> LogisticRegression:
    X = _features(0, n_features)
    return LogisticRegression().fit(X, np.arange(len(X)) % n_classes)


def test_zero_scores_predict_the_first_class() -> None:
    """A binary score of exactly 0 predicts classes_[0], as sklearn's ``scores > 0`` does."""
    model = LogisticRegression(fit_intercept=False).fit(_features(1, 2), np.arange(80) % 2)
    rows = np.zeros((3, 2))

    assert [0, 0, 0] == LinearEngine(model).predict(rows).tolist() == model.predict(rows).tolist()


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        (np.array([[0.0, np.nan, 1.0]]), "NaN"),
        (np.array([[np.inf, 0.0, 1.0]]), "infinity"),
        (np.zeros((2, 4)), "features"),
        (np.zeros((0, 3)), "0 sample"),
        (np.zeros(3), "2D array"),
    ],
    ids=["nan", "inf", "wrong-feature-count", "no-rows", "1-d"],
)
@pytest.mark.parametrize("output", ["predict", "predict_proba"])
def test_rejected_input_raises_sklearns_error(
    rows: NDArray[np.float64], match: str, output: str
) -> None:
    """Input scikit-learn rejects raises exactly scikit-learn's error, message included."""
    model = _logistic()

    with pytest.raises(ValueError, match=match) as expected:
        getattr(model, output)(rows)
    with pytest.raises(ValueError, match=match) as got:
        getattr(LinearEngine(model), output)(rows)
    assert str(expected.value) == str(got.value)


@pytest.mark.parametrize(
    "rows",
    [
        [[0.5, -1.0, 2.0]],
        np.array([[1, 2, 3]], dtype=np.int64),
        np.array([[0.5, -1.0, 2.0]], dtype=np.float32),
        np.arange(12.0).reshape(3, 4)[:, :3],
    ],
    ids=["list", "int", "float32", "strided"],
)
def test_other_input_is_answered_by_sklearn(rows: Any) -> None:
    """Input off the fast path (lists, other dtypes, strided views) gets sklearn's own answer."""
    model = _logistic(n_classes=3)
    engine = LinearEngine(model)

    assert np.array_equal(model.predict(rows), engine.predict(rows))
    assert np.array_equal(model.predict_proba(rows), engine.predict_proba(rows))


@pytest.mark.parametrize(
    "model",
    [
        _logistic().sparsify(),
        RidgeClassifier().fit(np.eye(3), np.eye(3)),  # multilabel
        LinearSVC().fit(np.eye(3), [0, 1, 1]),
        type("MyRegression", (LogisticRegression,), {})().fit(np.eye(3), [0, 1, 1]),
        GradientBoostingClassifier(n_estimators=2).fit(np.eye(3), [0, 1, 1]),
    ],
    ids=["sparse-coef", "multilabel", "other-linear", "subclass", "boosting"],
)
def test_unsupported_model_raises(model: Any) -> None:
    """The engine refuses models it does not answer for, saying why."""
    with pytest.raises(UnsupportedModelError, match=type(model).__name__):
        LinearEngine(model)


def test_predict_proba_is_offered_only_where_the_model_has_it() -> None:
    """Outputs hold predict_proba for LogisticRegression, not for RidgeClassifier or hinge SGD."""
    X, y = _features(2, 3), np.arange(80) % 3
    models = (LogisticRegression(), RidgeClassifier(), SGDClassifier(max_iter=5, tol=None))

    offered = [sorted(LinearEngine(model.fit(X, y)).outputs()) for model in models]

    assert [["predict", "predict_proba"], ["predict"], ["predict"]] == offered


def test_probe_covers_scales_signs_and_zeros() -> None:
    """The probe is seeded and holds zeros, both signs and values near 1e6."""
    rows = linear_probe_rows(5, seed=3)

    assert np.array_equal(rows, linear_probe_rows(5, seed=3))
    assert (rows == 0).all(axis=1).any()
    assert (rows > 0).any()
    assert (rows < 0).any()
    assert 1e5 < np.abs(rows).max() < 1e8


def _manifest(outputs: tuple[Output, ...] = ("predict", "predict_proba")) -> Manifest:
    return Manifest(
        name="m",
        version=1,
        artifact="model.joblib",
        sha256="0" * 64,
        framework="scikit-learn",
        framework_version="1.9.1",
        python_version="3.11.0",
        created_at="2026-01-01T00:00:00Z",
        task="classification",
        n_features=3,
        feature_names=None,
        classes=(0, 1, 2),
        outputs=outputs,
    )


def test_logistic_regression_is_served_by_linear(caplog: Any) -> None:
    """A verified LogisticRegression is served by the linear engine, with one log line."""
    model = _logistic(n_classes=3)

    with caplog.at_level(logging.INFO, logger=linear.__name__):
        engine = select_engine(model, _manifest(), Settings())

    assert (ENGINE_LINEAR, "") == (engine.name, engine.reason)
    assert 1 == len(caplog.records)
    assert "engine linear" in caplog.records[0].getMessage()
    rows = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(model.predict_proba(rows), engine.outputs["predict_proba"](rows))


def test_engine_off_serves_sklearn() -> None:
    """PREDICTION_TREE_ENGINE=off serves a linear model by its own methods too."""
    model = _logistic()

    engine = select_engine(model, _manifest(), Settings(tree_engine="off"))

    assert ("sklearn", model.predict) == (engine.name, engine.outputs["predict"])


def test_unsupported_model_is_served_by_sklearn() -> None:
    """A model neither engine supports is served by scikit-learn, with both reasons."""
    model = LinearSVC().fit(np.eye(3), [0, 1, 1])

    engine = select_engine(model, _manifest(("predict",)), Settings())

    assert ("sklearn", model.predict) == (engine.name, engine.outputs["predict"])
    assert "not a supported tree model" in engine.reason
    assert "not a supported linear model" in engine.reason


def test_failed_verification_falls_back(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    """An engine whose predict answers wrongly fails verification; sklearn serves, with why."""
    right = LinearEngine._predict

    def reversed_rows(self: LinearEngine, Xt: Any) -> NDArray[Any]:
        return right(self, Xt)[::-1]

    monkeypatch.setattr(LinearEngine, "_predict", reversed_rows)
    model = _logistic()

    with caplog.at_level(logging.INFO, logger=linear.__name__):
        engine = select_engine(model, _manifest(), Settings())

    assert ("sklearn", model.predict) == (engine.name, engine.outputs["predict"])
    assert "differs from scikit-learn" in engine.reason
    assert 1 == len(caplog.records)
    assert logging.WARNING == caplog.records[0].levelno


def test_failed_build_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A surprise while building the engine leaves the version served by scikit-learn."""

    def broken(self: LinearEngine, model: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(LinearEngine, "__init__", broken)
    model = _logistic()

    engine = select_engine(model, _manifest(), Settings())

    assert ("sklearn", model.predict_proba) == (engine.name, engine.outputs["predict_proba"])
    assert "RuntimeError: boom" in engine.reason
