"""An exact, fast inference engine for scikit-learn tree models, and the engine of each version.

scikit-learn's own ``predict`` on a 100-tree forest spends almost all of a small batch in fixed
per-call and per-tree Python costs (input validation, joblib dispatch, one ``predict_proba`` per
tree). :class:`TreeEngine` gives the same answers without them, by doing what scikit-learn does:

- inputs are cast to float32 and then compared, as doubles, with the float64 thresholds
  (``x <= threshold`` goes left); a NaN follows the node's ``missing_go_to_left``;
- a tree's answer is its leaf's ``tree_.value`` row (class fractions for classifiers, the mean
  for regressors);
- a forest adds its trees' answers to zeros one tree at a time in estimator order, then divides by
  the number of trees; ``predict`` is ``classes_.take(argmax(proba))`` (first index wins a tie).

Finite rows are walked by a small C loop (:mod:`service.engines._forest`, built with the package)
over all trees' nodes packed at build time, in one call per batch. Where the wheel was built without
it, small batches walk every tree at once over stacked numpy node arrays (a few numpy calls per tree
level) and larger ones call each tree's own Cython ``tree_.predict`` without the checks, which is
then faster. Rows with NaN (for models that take them) always go tree by tree. Inputs scikit-learn
would reject or treat specially (infinities, NaN where the model does not allow it, wrong shapes,
sparse matrices) are passed to scikit-learn unchanged, so errors are scikit-learn's too.

:func:`select_engine` builds the engine when a version loads and serves it only if it matches
scikit-learn on every row of a probe set made from the model's own thresholds; otherwise the version
is served by scikit-learn and one log line says why.

Threads: an engine is built and verified in the loader's thread and never changes afterwards; its
callables run on the batchers' model threads (or inline on the event loop), allocate per call and
only read the shared arrays, so concurrent calls are safe; the C walk releases the GIL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Final
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import ExtraTreesClassifier
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.ensemble import RandomForestClassifier
from sklearn.ensemble import RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree import DecisionTreeRegressor
from sklearn.tree import ExtraTreeClassifier
from sklearn.tree import ExtraTreeRegressor
from sklearn.utils import get_tags

from service.settings import Settings
from service.store import Manifest
from service.store import Output

__all__ = [
    "ENGINE_LINEAR",
    "ENGINE_SKLEARN",
    "ENGINE_TREES",
    "Engine",
    "TreeEngine",
    "UnsupportedModelError",
    "select_engine",
    "tree_predictor",
    "verify",
]

log = logging.getLogger(__name__)

ENGINE_TREES: Final = "trees"
ENGINE_SKLEARN: Final = "sklearn"
ENGINE_LINEAR: Final = "linear"

Predict = Callable[[NDArray[Any]], NDArray[Any]]
Walk = Literal["compiled", "stacked", "per_tree"]

try:
    from service.engines import _forest
except ImportError:  # built without a C compiler: the numpy walks serve instead
    _forest = None  # type: ignore[assignment]

COMPILED: Final = _forest is not None
"""Whether this installation has the C walk."""

# One packed node of the C walk (service/engines/_forest.c's Node).
_NODE: Final = np.dtype(
    [("feature", "<i4"), ("threshold", "<f4"), ("child", "<i4", (2,))], align=False
)

_FORESTS: Final = (
    RandomForestClassifier,
    RandomForestRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
)
# ExtraTrees forests are made of ExtraTree members (the same tree structure, random splits).
_TREES: Final = (
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    ExtraTreeClassifier,
    ExtraTreeRegressor,
)
_CLASSIFIERS: Final = (
    DecisionTreeClassifier,
    ExtraTreeClassifier,
    RandomForestClassifier,
    ExtraTreesClassifier,
)

# Without the C walk, batches up to this many rows walk all trees at once; larger ones go tree
# by tree through scikit-learn's Cython traversal. On the bench forest (100 trees, depth 20-30)
# the stacked walk costs 220 us at 1 row against 500 us per tree; they cross near 16-24 rows
# (CPU time, measured side by side; python -m bench.trees prints every walk).
STACKED_MAX_ROWS: Final = 16
# Probe size: threshold-edge rows (each row puts every feature at some threshold's edge) and
# random rows; enough to touch every threshold of small models and a sample of big ones.
PROBE_EDGE_ROWS: Final = 2048
PROBE_RANDOM_ROWS: Final = 512
# predict_proba may differ from scikit-learn by this much and still count as the same answer.
PROBA_TOLERANCE: Final = 1e-12


class UnsupportedModelError(Exception):
    """The model is not one the engine can answer for; the message says why."""


class _Forest:
    """The trees of one fitted tree model, as the engine walks them."""

    def __init__(self, estimator: Any, compiled: bool | None = None) -> None:
        kind = type(estimator)
        if kind in _FORESTS:
            members = list(estimator.estimators_)
            if not members or any(type(member) not in _TREES for member in members):
                raise UnsupportedModelError(f"{kind.__name__} has trees of unsupported types")
            self.averaged = True
        elif kind in _TREES:
            members = [estimator]
            self.averaged = False
        else:
            raise UnsupportedModelError(f"{kind.__name__} is not a supported tree model")
        if getattr(estimator, "n_outputs_", 1) != 1:
            raise UnsupportedModelError(f"{kind.__name__} has several outputs")
        self.estimator = estimator
        self.classifier = kind in _CLASSIFIERS
        self.classes: NDArray[Any] | None = estimator.classes_ if self.classifier else None
        self.n_columns = len(estimator.classes_) if self.classifier else 1
        self.n_features = int(estimator.n_features_in_)
        self.trees = tuple(member.tree_ for member in members)
        # scikit-learn checks the first tree's tags to decide whether NaN input is allowed.
        self.allow_nan = bool(get_tags(members[0]).input_tags.allow_nan)
        for tree in self.trees:
            if tree.value.shape[1:] != (1, self.n_columns) or tree.n_features != self.n_features:
                raise UnsupportedModelError(f"{kind.__name__} has trees of another shape")
        self.compiled = COMPILED if compiled is None else compiled
        if self.compiled and not COMPILED:
            raise UnsupportedModelError("this installation has no compiled tree walk")
        counts = [tree.node_count for tree in self.trees]
        self.roots = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        self.n_nodes = int(sum(counts))
        self.values = np.empty((self.n_nodes, self.n_columns), dtype=np.float64)
        for offset, tree in zip(self.roots.tolist(), self.trees, strict=True):
            self.values[offset : offset + tree.node_count] = tree.value[:, 0, :]
        if self.compiled:
            self._pack()
        else:
            self._stack()

    @property
    def walks(self) -> tuple[Walk, ...]:
        """The walks :meth:`scores` may take for finite rows."""
        return ("compiled",) if self.compiled else ("stacked", "per_tree")

    def _pack(self) -> None:
        """All trees' nodes as the C walk reads them: 16 bytes each, thresholds as float32."""
        self.nodes = np.zeros(self.n_nodes, dtype=_NODE)
        for offset, tree in zip(self.roots.tolist(), self.trees, strict=True):
            nodes = self.nodes[offset : offset + tree.node_count]
            leaf = tree.children_left == -1
            own = np.arange(offset, offset + tree.node_count, dtype=np.int32)
            # A leaf loops to itself: no finite float32 is above +inf.
            nodes["feature"] = np.where(leaf, 0, tree.feature)
            nodes["threshold"] = np.where(leaf, np.inf, _float32_at_or_below(tree.threshold))
            nodes["child"][:, 0] = np.where(leaf, own, tree.children_left + offset)
            nodes["child"][:, 1] = np.where(leaf, own, tree.children_right + offset)
        self.roots32 = self.roots.astype(np.int32)
        assert _forest is not None
        _forest.check_nodes(self.nodes, self.roots32, self.n_features)

    def _stack(self) -> None:
        """All trees' nodes in one set of arrays; leaves loop to themselves, so a walk of
        ``depth`` steps ends on every tree's leaf whatever its own depth."""
        offsets = self.roots
        total = self.n_nodes
        self.feature = np.zeros(total, dtype=np.intp)
        self.threshold = np.full(total, np.inf, dtype=np.float64)
        # children[2 * node + go_right]: one gather per step instead of a select.
        self.children = np.empty(2 * total, dtype=np.intp)
        self.depth = max(int(tree.max_depth) for tree in self.trees)
        for offset, tree in zip(offsets.tolist(), self.trees, strict=True):
            count = tree.node_count
            nodes = slice(offset, offset + count)
            leaf = tree.children_left == -1
            own = np.arange(offset, offset + count, dtype=np.intp)
            self.feature[nodes] = np.where(leaf, 0, tree.feature)
            # x > inf is false for every x (NaN never reaches the stacked walk): leaves stay.
            self.threshold[nodes] = np.where(leaf, np.inf, tree.threshold)
            self.children[2 * offset : 2 * (offset + count) : 2] = np.where(
                leaf, own, tree.children_left + offset
            )
            self.children[2 * offset + 1 : 2 * (offset + count) : 2] = np.where(
                leaf, own, tree.children_right + offset
            )

    @property
    def nbytes(self) -> int:
        if self.compiled:
            arrays: tuple[NDArray[Any], ...] = (self.roots32, self.nodes, self.values)
        else:
            arrays = (self.roots, self.feature, self.threshold, self.children, self.values)
        return sum(array.nbytes for array in arrays)

    def scores(self, X: Any, path: Walk | None = None) -> NDArray[np.float64] | None:
        """The forest's mean leaf values (n_rows, n_columns) for ``X``, or None for input that
        scikit-learn must see itself (it raises, or treats the input in a way not copied here)."""
        if not isinstance(X, np.ndarray) or X.ndim != 2 or X.dtype.kind not in "biuf":
            return None
        if X.shape[0] == 0 or X.shape[1] != self.n_features:
            return None
        with np.errstate(over="ignore"):  # such rows go to scikit-learn, which warns itself
            X32 = np.asarray(X, dtype=np.float32)
        if not np.isfinite(X32).all():
            if np.isinf(X32).any() or not self.allow_nan:
                return None
            path = "per_tree"
        if path is None:
            if self.compiled:
                path = "compiled"
            else:
                path = "stacked" if X32.shape[0] <= STACKED_MAX_ROWS else "per_tree"
        if path == "compiled":
            return self._compiled(X32)
        return self._stacked(X32) if path == "stacked" else self._per_tree(X32)

    def _compiled(self, X32: NDArray[np.float32]) -> NDArray[np.float64]:
        assert _forest is not None
        X32 = np.ascontiguousarray(X32)
        # scikit-learn adds the trees' answers to zeros; one tree's answer is returned as is.
        total = np.zeros((X32.shape[0], self.n_columns), dtype=np.float64)
        _forest.sum_leaves(
            self.nodes,
            self.roots32,
            X32,
            self.values,
            total,
            self.n_features,
            self.n_columns,
            not self.averaged,
        )
        if self.averaged:
            total /= len(self.trees)
        return total

    def _stacked(self, X32: NDArray[np.float32]) -> NDArray[np.float64]:
        n_rows = X32.shape[0]
        # float32 values promoted to double, exactly as the Cython comparison does.
        flat = X32.astype(np.float64).ravel()
        row_start = (np.arange(n_rows, dtype=np.intp) * self.n_features)[:, None]
        node = np.broadcast_to(self.roots, (n_rows, len(self.trees))).copy()
        for _ in range(self.depth):
            value = flat.take(row_start + self.feature.take(node))
            node = self.children.take(2 * node + (value > self.threshold.take(node)))
        # (trees, rows, columns): accumulate adds along the tree axis strictly in order, as
        # scikit-learn's `out += tree_proba` loop does (a sum could add pairwise).
        leaf_values: NDArray[np.float64] = self.values.take(node.T, axis=0)
        if not self.averaged:
            return np.asarray(leaf_values[0], dtype=np.float64)
        total: NDArray[np.float64] = np.add.accumulate(leaf_values, axis=0)[-1]
        # scikit-learn starts from zeros: 0.0 + x differs from x only for x = -0.0.
        total += 0.0
        total /= len(self.trees)
        return total

    def _per_tree(self, X32: NDArray[np.float32]) -> NDArray[np.float64]:
        if not self.averaged:
            return np.asarray(self.trees[0].predict(X32)[:, : self.n_columns], dtype=np.float64)
        total = np.zeros((X32.shape[0], self.n_columns), dtype=np.float64)
        for tree in self.trees:
            total += tree.predict(X32)[:, : self.n_columns]
        total /= len(self.trees)
        return total


def _float32_at_or_below(thresholds: NDArray[np.float64]) -> NDArray[np.float32]:
    """The largest float32 not above each threshold: for a float32 ``x``, ``x <= t`` exactly
    when ``x <= _float32_at_or_below(t)``, so the C walk compares in float32."""
    with np.errstate(over="ignore"):  # beyond float32's range: +inf, stepped down to its max
        rounded = thresholds.astype(np.float32)
    above = rounded.astype(np.float64) > thresholds
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


class TreeEngine:
    """scikit-learn's ``predict`` (and ``predict_proba``) of a fitted tree model, faster.

    Supports ``DecisionTree``, ``RandomForest`` and ``ExtraTrees`` classifiers and regressors with
    one output, alone or as the last step of a ``Pipeline`` whose earlier steps run as usual.
    It is not checked against scikit-learn here; :func:`verify` does that.

    Raises:
        UnsupportedModelError: any other model.
    """

    def __init__(self, model: Any, compiled: bool | None = None) -> None:
        self.model = model
        if type(model) is Pipeline:
            steps = [step for _, step in model.steps]
            self.transforms = tuple(s for s in steps[:-1] if s is not None and s != "passthrough")
            final = steps[-1]
        else:
            self.transforms = ()
            final = model
        self.forest = _Forest(final, compiled)
        self.final = final

    @property
    def classifier(self) -> bool:
        return self.forest.classifier

    @property
    def nbytes(self) -> int:
        """Memory the engine holds beyond the model (its stacked node arrays)."""
        return self.forest.nbytes

    def outputs(self) -> dict[Output, Predict]:
        """Output name -> the callable that answers it."""
        outputs: dict[Output, Predict] = {"predict": self.predict}
        if self.classifier:
            outputs["predict_proba"] = self.predict_proba
        return outputs

    def predict(self, X: Any) -> NDArray[Any]:
        return self._predict(self._transform(X), None)

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        return self._predict_proba(self._transform(X), None)

    def _transform(self, X: Any) -> Any:
        for step in self.transforms:
            X = step.transform(X)
        return X

    def _predict(self, Xt: Any, path: Walk | None) -> NDArray[Any]:
        scores = self.forest.scores(Xt, path)
        if scores is None:
            return np.asarray(self.final.predict(Xt))
        if self.forest.classes is None:
            return scores[:, 0]
        return np.asarray(self.forest.classes.take(np.argmax(scores, axis=1), axis=0))

    def _predict_proba(self, Xt: Any, path: Walk | None) -> NDArray[np.float64]:
        if not self.classifier:
            raise AttributeError(f"{type(self.final).__name__} has no predict_proba")
        scores = self.forest.scores(Xt, path)
        if scores is None:
            return np.asarray(self.final.predict_proba(Xt), dtype=np.float64)
        return scores


def tree_predictor(model: Any, output: Output = "predict") -> Predict | None:
    """The engine's verified callable for ``output`` of ``model``, or None if it cannot serve it."""
    try:
        engine = TreeEngine(model)
    except UnsupportedModelError:
        return None
    if verify(engine, seed=0) is not None:
        return None
    return engine.outputs().get(output)


def probe_rows(engine: TreeEngine, seed: int) -> NDArray[np.float64]:
    """Rows in the final tree model's input space that test the engine's every decision rule.

    Edge rows put each feature at a threshold exactly, at its float32 rounding and one float32
    step either side of that; random rows fill the thresholds' range; NaN rows (for models that
    take NaN) test missing-value routing.
    """
    forest = engine.forest
    rng = np.random.default_rng(seed)
    n_features = forest.n_features
    per_feature: list[NDArray[np.float64]] = []
    for feature in range(n_features):
        found = [
            tree.threshold[(tree.children_left != -1) & (tree.feature == feature)]
            for tree in forest.trees
        ]
        thresholds = np.unique(np.concatenate(found))
        # A NaN-trained split may put every number left (threshold +inf); no finite row
        # can sit at that edge, and float32 cannot hold values beyond its range.
        per_feature.append(thresholds[np.isfinite(thresholds.astype(np.float32))])
    n_edge = min(PROBE_EDGE_ROWS, max(4 * len(t) for t in per_feature) or 1)
    edge = np.zeros((n_edge, n_features), dtype=np.float64)
    random = np.zeros((PROBE_RANDOM_ROWS, n_features), dtype=np.float64)
    for feature, thresholds in enumerate(per_feature):
        if len(thresholds) == 0:
            edge[:, feature] = rng.normal(size=n_edge)
            random[:, feature] = rng.normal(size=PROBE_RANDOM_ROWS)
            continue
        rounded = thresholds.astype(np.float32)
        values = np.concatenate(
            [
                thresholds,
                rounded.astype(np.float64),
                np.nextafter(rounded, np.float32(np.inf)).astype(np.float64),
                np.nextafter(rounded, np.float32(-np.inf)).astype(np.float64),
            ]
        )
        values = values[np.isfinite(values.astype(np.float32))]
        edge[:, feature] = rng.choice(values, size=n_edge, replace=len(values) < n_edge)
        low, high = float(thresholds.min()), float(thresholds.max())
        span = max(high - low, 1.0)
        random[:, feature] = rng.uniform(low - span / 4, high + span / 4, size=PROBE_RANDOM_ROWS)
    rows = [edge, random, np.zeros((1, n_features))]
    if forest.allow_nan:
        holes = random[:64].copy()
        holes[rng.random(holes.shape) < 0.3] = np.nan
        rows.append(holes)
    return np.concatenate(rows)


def _answers(
    engine: TreeEngine, rows: NDArray[np.float64], path: Walk | None
) -> tuple[NDArray[Any], NDArray[np.float64] | None]:
    proba = engine._predict_proba(rows, path) if engine.classifier else None
    return engine._predict(rows, path), proba


def verify(engine: TreeEngine, seed: int = 0) -> str | None:
    """None if the engine answers as scikit-learn does on the probe set, else what differed.

    Every walk the engine may take is checked on every probe row, and a whole pipeline on
    random rows of its own input (when its earlier steps accept them).
    """
    rows = probe_rows(engine, seed)
    final = engine.final
    # NaN rows always go tree by tree, so they are checked apart from the others.
    holes = np.isnan(rows).any(axis=1)
    checks: tuple[tuple[NDArray[np.float64], tuple[Walk | None, ...]], ...] = (
        (rows[~holes], engine.forest.walks),
        (rows[holes], (None,)),
    )
    for subset, paths in checks:
        if len(subset) == 0:
            continue
        expected = np.asarray(final.predict(subset))
        expected_proba = np.asarray(final.predict_proba(subset)) if engine.classifier else None
        for path in paths:
            # Each row's arithmetic is the same whatever the batch, so one call per walk
            # covers the small batches the stacked walk serves.
            got, got_proba = _answers(engine, subset, path)
            problem = _compare("predict", got, expected)
            if problem is None and got_proba is not None and expected_proba is not None:
                problem = _compare("predict_proba", got_proba, expected_proba)
            if problem is not None:
                return f"{problem} on the {path or 'missing-value'} walk"
    if engine.transforms:
        return _verify_pipeline(engine, seed)
    return None


def _verify_pipeline(engine: TreeEngine, seed: int) -> str | None:
    model = engine.model
    n_features = getattr(model, "n_features_in_", None)
    if n_features is None:
        return None
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(PROBE_RANDOM_ROWS, int(n_features))) * rng.choice(
        [0.1, 1.0, 10.0, 100.0], size=(PROBE_RANDOM_ROWS, 1)
    )
    try:
        expected = np.asarray(model.predict(rows))
    except (ValueError, TypeError):
        # The earlier steps do not take arbitrary numbers (e.g. categories); the tree part
        # was verified on its own input above.
        return None
    problem = _compare("pipeline predict", np.asarray(engine.predict(rows)), expected)
    if problem is None and engine.classifier:
        problem = _compare(
            "pipeline predict_proba",
            engine.predict_proba(rows),
            np.asarray(model.predict_proba(rows)),
        )
    return problem


def _compare(what: str, got: NDArray[Any], expected: NDArray[Any]) -> str | None:
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return (
            f"{what} gave {got.dtype}{list(got.shape)}, not {expected.dtype}{list(expected.shape)}"
        )
    if got.dtype.kind == "f" and what.endswith("predict_proba"):
        if np.allclose(got, expected, rtol=0.0, atol=PROBA_TOLERANCE, equal_nan=True):
            return None
        rows = np.argwhere(~np.isclose(got, expected, rtol=0.0, atol=PROBA_TOLERANCE))
    else:
        if np.array_equal(got, expected, equal_nan=got.dtype.kind == "f"):
            return None
        rows = np.argwhere(got != expected)
    return f"{what} differs from scikit-learn on {len(rows)} probe values"


@dataclass(frozen=True, slots=True)
class Engine:
    """What answers one served version: a callable per output, and the engine's name."""

    name: str
    outputs: Mapping[Output, Predict]
    reason: str = ""


def select_engine(model: Any, manifest: Manifest, settings: Settings) -> Engine:
    """The engine that serves ``model``: the tree engine, else the linear engine
    (:mod:`service.engines.linear`), if it is allowed (PREDICTION_TREE_ENGINE=off turns both
    off), supports the model and matches scikit-learn on its probe set; else scikit-learn's own
    methods. Logs one line."""
    fallback = {output: getattr(model, output) for output in manifest.outputs}
    label = f"model {manifest.name} version {manifest.version}"
    if settings.tree_engine == "off":
        log.info("%s: engine %s (PREDICTION_TREE_ENGINE=off)", label, ENGINE_SKLEARN)
        return Engine(ENGINE_SKLEARN, fallback, "PREDICTION_TREE_ENGINE=off")
    try:
        engine = TreeEngine(model)
        problem = verify(engine)
    except UnsupportedModelError as error:
        from service.engines.linear import select_linear_engine  # it imports this module

        return select_linear_engine(model, manifest, fallback, label, not_tree=str(error))
    except Exception as error:
        # Any surprise in an optional speed-up must leave the version served, by scikit-learn.
        reason = f"the tree engine failed to build: {type(error).__name__}: {error}"
        log.warning("%s: engine %s (%s)", label, ENGINE_SKLEARN, reason)
        return Engine(ENGINE_SKLEARN, fallback, reason)
    if problem is not None:
        reason = f"the tree engine was not used: {problem}"
        log.warning("%s: engine %s (%s)", label, ENGINE_SKLEARN, reason)
        return Engine(ENGINE_SKLEARN, fallback, reason)
    available = engine.outputs()
    outputs = {output: available.get(output, fallback[output]) for output in manifest.outputs}
    log.info(
        "%s: engine %s (matches scikit-learn on its probe set; %d trees, %.1f MiB of nodes)",
        label,
        ENGINE_TREES,
        len(engine.forest.trees),
        engine.nbytes / 2**20,
    )
    return Engine(ENGINE_TREES, outputs)
