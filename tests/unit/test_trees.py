"""The tree engine answers exactly as scikit-learn does, or scikit-learn serves instead."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import Phase
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree import DecisionTreeRegressor

from service.engines import trees
from service.engines.trees import COMPILED
from service.engines.trees import STACKED_MAX_ROWS
from service.engines.trees import TreeEngine
from service.engines.trees import probe_rows
from service.engines.trees import select_engine
from service.engines.trees import tree_predictor
from service.engines.trees import verify
from service.settings import Settings
from service.store import Manifest
from service.store import Output

# Bounded so the whole module runs in seconds; each example fits a small forest.
EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)

CLASSIFIERS = (DecisionTreeClassifier, RandomForestClassifier, ExtraTreesClassifier)
REGRESSORS = (DecisionTreeRegressor, RandomForestRegressor, ExtraTreesRegressor)
# Every walk this installation has: the C walk where it was built, and always the numpy walks
# that serve without it. Each example checks all of them.
BUILDS = (True, False) if COMPILED else (False,)
LABELS = {
    "int": np.array([3, -1, 7, 0, 12]),
    "str": np.array(["setosa", "b", "a", "zz", "c"]),
}


def _data(seed: int, n_features: int, *, nan: bool) -> NDArray[np.float64]:
    """Few distinct values (so rows repeat and leaves tie), a constant column, NaN if asked."""
    rng = np.random.default_rng(seed)
    X = rng.integers(-3, 4, size=(60, n_features)).astype(np.float64) * rng.choice([0.1, 1.7])
    X[:, 0] = 2.5
    X[:20] = X[20:40]  # duplicated rows; their labels below differ, which forces ties
    if nan:
        X[rng.random(X.shape) < 0.15] = np.nan
    return np.asarray(X, dtype=np.float64)


def _forest_params(data: st.DataObject, kind: type) -> dict[str, Any]:
    params: dict[str, Any] = {
        "random_state": data.draw(st.integers(0, 1000)),
        "max_features": data.draw(st.sampled_from([None, "sqrt", 0.5, 1])),
        "min_samples_leaf": data.draw(st.integers(1, 3)),
        "max_depth": data.draw(st.sampled_from([None, 2, 6])),
    }
    if kind not in (DecisionTreeClassifier, DecisionTreeRegressor):
        params["n_estimators"] = data.draw(st.integers(1, 12))
        params["bootstrap"] = data.draw(st.booleans())
    return params


def _rows_to_check(engine: TreeEngine, X: NDArray[np.float64], seed: int) -> NDArray[np.float64]:
    """Training rows, rows at and around the thresholds, and random rows."""
    rng = np.random.default_rng(seed + 1)
    random = rng.normal(scale=3.0, size=(40, X.shape[1]))
    return np.concatenate([X, probe_rows(engine, seed + 2), random])


def _assert_same(engine: TreeEngine, model: Any, rows: NDArray[np.float64]) -> None:
    """Answers equal scikit-learn's at every batch size the batcher may use."""
    for size in (1, STACKED_MAX_ROWS, STACKED_MAX_ROWS + 1, len(rows)):
        for start in range(0, len(rows), max(size, len(rows) // 6)):
            batch = rows[start : start + size]
            expected = model.predict(batch)
            got = engine.predict(batch)
            assert expected.dtype == got.dtype
            np.testing.assert_array_equal(expected, got)
            if hasattr(model, "predict_proba"):
                np.testing.assert_array_equal(
                    model.predict_proba(batch), engine.predict_proba(batch)
                )


@EXAMPLES
@given(
    data=st.data(),
    kind=st.sampled_from(CLASSIFIERS),
    n_classes=st.integers(2, 5),
    labels=st.sampled_from(sorted(LABELS)),
    n_features=st.integers(1, 6),
    nan=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_classifiers_match_sklearn(
    data: st.DataObject,
    kind: type,
    n_classes: int,
    labels: str,
    n_features: int,
    nan: bool,
    seed: int,
) -> None:
    """Classifiers (2-5 classes, int or str labels, NaN-trained or not) answer as scikit-learn."""
    X = _data(seed, n_features, nan=nan)
    rng = np.random.default_rng(seed)
    y = LABELS[labels][rng.integers(0, n_classes, size=len(X))]
    y[:n_classes] = LABELS[labels][:n_classes]  # every class present
    model = kind(**_forest_params(data, kind)).fit(X, y)

    for compiled in BUILDS:
        engine = TreeEngine(model, compiled)
        assert verify(engine, seed) is None
        _assert_same(engine, model, _rows_to_check(engine, X, seed))


@EXAMPLES
@given(
    data=st.data(),
    kind=st.sampled_from(REGRESSORS),
    n_features=st.integers(1, 6),
    nan=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_regressors_match_sklearn(
    data: st.DataObject, kind: type, n_features: int, nan: bool, seed: int
) -> None:
    """Regressors (NaN-trained or not) answer exactly as scikit-learn."""
    X = _data(seed, n_features, nan=nan)
    y = np.random.default_rng(seed).normal(size=len(X)) * 1e3
    model = kind(**_forest_params(data, kind)).fit(X, y)

    for compiled in BUILDS:
        engine = TreeEngine(model, compiled)
        assert verify(engine, seed) is None
        _assert_same(engine, model, _rows_to_check(engine, X, seed))


def test_pipeline_runs_earlier_steps() -> None:
    """A forest behind a scaler answers as the whole pipeline does."""
    X = _data(1, 4, nan=False)
    y = np.arange(len(X)) % 3
    model = make_pipeline(StandardScaler(), RandomForestClassifier(5, random_state=0)).fit(X, y)

    for compiled in BUILDS:
        engine = TreeEngine(model, compiled)
        assert verify(engine) is None
        _assert_same(engine, model, np.random.default_rng(0).normal(size=(50, 4)))


def test_missing_values_follow_sklearn() -> None:
    """NaN rows go where the NaN-trained forest sends them, as in scikit-learn."""
    X = _data(2, 3, nan=True)
    y = np.arange(len(X)) % 2
    model = RandomForestClassifier(8, random_state=0).fit(X, y)
    rows = X.copy()
    rows[::2, 1] = np.nan

    for compiled in BUILDS:
        _assert_same(TreeEngine(model, compiled), model, rows)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("value", [np.inf, 1e39])
def test_non_finite_input_raises_as_sklearn(value: float) -> None:
    """Input that is infinite in float32 raises scikit-learn's own error."""
    model = RandomForestRegressor(3, random_state=0).fit(_data(3, 2, nan=False), np.arange(60.0))
    rows = np.array([[0.0, value]])

    with pytest.raises(ValueError, match="infinity") as expected:
        model.predict(rows)
    with pytest.raises(ValueError, match="infinity") as got:
        TreeEngine(model).predict(rows)
    assert str(expected.value) == str(got.value)


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


def _forest() -> RandomForestClassifier:
    return RandomForestClassifier(10, random_state=0).fit(_data(4, 3, nan=False), np.arange(60) % 3)


def test_supported_model_is_served_by_trees() -> None:
    """A verified forest is served by the engine's callables."""
    model = _forest()

    engine = select_engine(model, _manifest(), Settings())

    assert ("trees", "") == (engine.name, engine.reason)
    rows = np.random.default_rng(0).normal(size=(5, 3))
    np.testing.assert_array_equal(model.predict_proba(rows), engine.outputs["predict_proba"](rows))


def test_engine_off_serves_sklearn() -> None:
    """PREDICTION_TREE_ENGINE=off serves the model's own methods."""
    model = _forest()

    engine = select_engine(model, _manifest(), Settings(tree_engine="off"))

    assert ("sklearn", model.predict) == (engine.name, engine.outputs["predict"])


@pytest.mark.parametrize(
    "model",
    [
        # Sparse coef_: the linear engine (which serves dense ones) declines it too.
        LogisticRegression().fit(np.eye(3), [0, 1, 1]).sparsify(),
        GradientBoostingClassifier(n_estimators=2).fit(np.eye(3), [0, 1, 1]),
        RandomForestClassifier(2).fit(np.eye(3), np.eye(3)),  # several outputs
        type("MyForest", (RandomForestClassifier,), {})(2).fit(np.eye(3), [0, 1, 1]),
    ],
    ids=["sparse-linear", "boosting", "multi-output", "subclass"],
)
def test_unsupported_model_is_served_by_sklearn(model: Any) -> None:
    """A model the engine does not support is served by scikit-learn, with the reason."""
    engine = select_engine(model, _manifest(), Settings())

    assert "sklearn" == engine.name
    assert engine.reason
    assert tree_predictor(model) is None


@pytest.mark.parametrize("compiled", BUILDS, ids=lambda c: "C" if c else "numpy")
def test_failed_probe_falls_back(
    compiled: bool, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    """An engine that compares with float32-rounded thresholds fails the probe; sklearn serves."""
    monkeypatch.setattr(trees, "COMPILED", compiled)
    if compiled:
        # Nearest rounding puts a threshold above its float64 value about half the time.
        monkeypatch.setattr(trees, "_float32_at_or_below", lambda t: t.astype(np.float32))
    else:
        stack = trees._Forest._stack

        def rounded_thresholds(self: Any) -> None:
            stack(self)
            self.threshold = self.threshold.astype(np.float32).astype(np.float64)

        monkeypatch.setattr(trees._Forest, "_stack", rounded_thresholds)
    model = _forest()

    with caplog.at_level(logging.INFO, logger=trees.__name__):
        engine = select_engine(model, _manifest(), Settings())

    assert ("sklearn", model.predict_proba) == (engine.name, engine.outputs["predict_proba"])
    assert 1 == len(caplog.records)
    assert "differs from scikit-learn" in caplog.records[0].getMessage()


def test_numpy_walks_serve_without_the_compiled_walk(monkeypatch: pytest.MonkeyPatch) -> None:
    """An installation built without a C compiler serves forests with the numpy walks."""
    monkeypatch.setattr(trees, "COMPILED", False)
    model = _forest()

    engine = select_engine(model, _manifest(), Settings())

    assert "trees" == engine.name
    rows = np.random.default_rng(1).normal(size=(40, 3))
    np.testing.assert_array_equal(model.predict_proba(rows), engine.outputs["predict_proba"](rows))


def test_installation_has_the_compiled_walk() -> None:
    """`make install` builds the C walk (a C compiler is part of the test set-up), so the
    suite checks the walk the server uses rather than only the fallback."""
    assert COMPILED, "service.engines._forest was not built: install gcc and reinstall"


@pytest.mark.skipif(not COMPILED, reason="needs the compiled walk")
def test_compiled_walk_rejects_malformed_nodes() -> None:
    """check_nodes refuses nodes a walk could leave the arrays from, or loop on forever."""
    engine = TreeEngine(_forest(), compiled=True)
    forest = engine.forest
    from service.engines import _forest as _forest_module

    for field, value in (("feature", 3), ("child", -1)):
        nodes = forest.nodes.copy()
        split = int(np.flatnonzero(np.isfinite(nodes["threshold"]))[0])
        nodes[field][split] = value
        with pytest.raises(ValueError, match="out of range"):
            _forest_module.check_nodes(nodes, forest.roots32, forest.n_features)


@pytest.mark.skipif(not COMPILED, reason="needs the compiled walk")
def test_compiled_walk_rejects_mismatched_arrays() -> None:
    """sum_leaves checks every buffer's size before it reads one."""
    forest = TreeEngine(_forest(), compiled=True).forest
    from service.engines import _forest as _forest_module

    rows = np.zeros((4, 3), dtype=np.float32)
    out = np.zeros((3, forest.n_columns))  # one row short

    with pytest.raises(ValueError, match="out has"):
        _forest_module.sum_leaves(
            forest.nodes, forest.roots32, rows, forest.values, out, 3, forest.n_columns, False
        )


@pytest.mark.parametrize("compiled", BUILDS, ids=lambda c: "C" if c else "numpy")
def test_engine_is_smaller_than_model(compiled: bool) -> None:
    """The engine's arrays take less memory than the forest's own nodes and values."""
    model = _forest()
    nodes = sum(tree.tree_.__getstate__()["nodes"].nbytes for tree in model.estimators_)
    values = sum(tree.tree_.value.nbytes for tree in model.estimators_)

    assert TreeEngine(model, compiled).nbytes <= 2 * (nodes + values)
