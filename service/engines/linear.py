"""An exact, fast inference engine for scikit-learn's linear models.

scikit-learn 1.9.1's ``LogisticRegression.predict`` on one row costs ~370 us here, and the
arithmetic is ~5 us of it: the rest is input validation (``check_array``, narwhals' dataframe
probes through ``inspect.getattr_static``, array-API namespace look-ups), paid on every call.
:class:`LinearEngine` gives the same answers without it, by doing after a cheap check exactly
what scikit-learn does after its validation, with the model's own arrays, in the same order and
dtypes (from ``sklearn/linear_model/_base.py``, ``_logistic.py``, ``_stochastic_gradient.py``
and ``sklearn/utils/extmath.py``):

- regressors (``LinearModel._decision_function``): ``X @ coef_ + intercept_`` for a 1-D
  ``coef_``, else ``X @ coef_.T + intercept_``; ``SGDRegressor`` then ``ravel()``\\ s;
- classifiers (``LinearClassifierMixin``): ``scores = X @ coef_.T + intercept_``, one column
  reshaped to 1-D; ``predict`` is ``classes_.take(scores > 0)`` for 1-D scores, else
  ``classes_.take(argmax(scores, axis=1))`` (first index wins a tie);
- ``predict_proba``: ``expit`` in place, then ``stack([1 - p, p])`` (binary) or the one-vs-rest
  normalisation (``_predict_proba_lr``: ``LogisticRegression`` binary, ``SGDClassifier`` with
  ``log_loss``); ``softmax(scores, copy=False)`` (``LogisticRegression`` multiclass); the clipped
  ``(s + 1) / 2`` of ``SGDClassifier`` with ``modified_huber``.

Only a float64, C- or F-contiguous, 2-D numpy array with at least one row, the model's feature
count and only finite values takes that path; scikit-learn's validation leaves such an array
untouched, so both compute on the same array. Anything else (lists, other dtypes, wrong shapes,
NaN or infinity, sparse matrices, dataframes) goes to the scikit-learn method unchanged, so its
answers, warnings and errors are scikit-learn's own. Earlier steps of a ``Pipeline`` run with their
own ``transform``, as ``Pipeline.predict`` runs them.

:func:`verify_linear` compares the engine with scikit-learn bit for bit on a seeded probe set;
:func:`select_linear_engine` (called by :func:`service.engines.trees.select_engine` for models
that are not tree models) serves the engine only when that holds, else scikit-learn, with one log
line either way.

Threads: an engine is built and verified in the loader's thread and never changes afterwards; it
only reads the model's arrays, and every in-place step works on arrays that call allocated, so its
callables are safe to run concurrently on any thread, the event loop's included.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from typing import Final
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.linear_model import ElasticNet
from sklearn.linear_model import Lasso
from sklearn.linear_model import LinearRegression
from sklearn.linear_model import LogisticRegression
from sklearn.linear_model import LogisticRegressionCV
from sklearn.linear_model import Ridge
from sklearn.linear_model import RidgeClassifier
from sklearn.linear_model import RidgeClassifierCV
from sklearn.linear_model import RidgeCV
from sklearn.linear_model import SGDClassifier
from sklearn.linear_model import SGDRegressor
from sklearn.pipeline import Pipeline

from service.engines.trees import ENGINE_LINEAR
from service.engines.trees import ENGINE_SKLEARN
from service.engines.trees import Engine
from service.engines.trees import Predict
from service.engines.trees import UnsupportedModelError
from service.store import Manifest
from service.store import Output

__all__ = [
    "LinearEngine",
    "linear_predictor",
    "linear_probe_rows",
    "select_linear_engine",
    "verify_linear",
]

log = logging.getLogger(__name__)

# How scikit-learn turns a classifier's scores into probabilities, per model kind.
Proba = Literal["ovr", "softmax", "modified_huber"]

# Regressors answered by LinearModel._decision_function (ElasticNet and Lasso defer to it for
# dense input).
_LINEAR_MODELS: Final = (LinearRegression, Ridge, RidgeCV, Lasso, ElasticNet)
_RIDGE_CLASSIFIERS: Final = (RidgeClassifier, RidgeClassifierCV)
_LOGISTIC: Final = (LogisticRegression, LogisticRegressionCV)
# scikit-learn's indexing dtype for binary predictions (xp.asarray(0).dtype).
_INDEX_DTYPE: Final = np.asarray(0).dtype

# Probe: rows at these scales (each row one scale, or each value its own), both signs.
PROBE_SCALES: Final = (0.0, 1e-3, 1.0, 10.0, 1e3, 1e6)
PROBE_ROWS: Final = 300
# Batch sizes checked besides the whole probe at once (BLAS may take other kernels per size).
PROBE_BATCHES: Final = (1, 2, 7, 64)


def _proba_kind(final: Any) -> Proba | None:
    """How ``final.predict_proba`` computes, or None if it has none."""
    kind = type(final)
    if kind in _LOGISTIC:
        return "ovr" if np.size(final.classes_) <= 2 else "softmax"
    if kind is SGDClassifier:
        if final.loss == "log_loss":
            return "ovr"
        if final.loss == "modified_huber":
            return "modified_huber"
    return None


class LinearEngine:
    """scikit-learn's ``predict`` (and ``predict_proba``) of a fitted linear model, faster.

    Supports ``LogisticRegression(CV)``, ``RidgeClassifier(CV)`` (not multilabel),
    ``SGDClassifier``, ``LinearRegression``, ``Ridge(CV)``, ``Lasso``, ``ElasticNet`` and
    ``SGDRegressor`` (exact types, dense ``coef_``, fitted without feature names), alone or as the
    last step of a ``Pipeline`` whose earlier steps run as usual. It is not checked against
    scikit-learn here; :func:`verify_linear` does that.

    Raises:
        UnsupportedModelError: any other model.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        if type(model) is Pipeline:
            steps = [step for _, step in model.steps]
            self.transforms = tuple(s for s in steps[:-1] if s is not None and s != "passthrough")
            final = steps[-1]
        else:
            self.transforms = ()
            final = model
        kind = type(final)
        name = kind.__name__
        if kind in _LOGISTIC or kind in _RIDGE_CLASSIFIERS or kind is SGDClassifier:
            self.classifier = True
        elif kind in _LINEAR_MODELS or kind is SGDRegressor:
            self.classifier = False
        else:
            raise UnsupportedModelError(f"{name} is not a supported linear model")
        coef = getattr(final, "coef_", None)
        if type(coef) is not np.ndarray or coef.ndim not in (1, 2) or coef.dtype.kind != "f":
            raise UnsupportedModelError(f"{name} has no dense coef_ (unfitted or sparsified)")
        intercept = final.intercept_
        if not isinstance(intercept, (float, np.ndarray, np.floating)):
            raise UnsupportedModelError(f"{name} has an intercept_ of type {type(intercept)}")
        if hasattr(final, "feature_names_in_"):
            # scikit-learn warns on every numpy call to such a model; leave that to it.
            raise UnsupportedModelError(f"{name} was fitted with feature names")
        self.n_features = int(final.n_features_in_)
        if coef.shape[-1] != self.n_features:
            raise UnsupportedModelError(f"{name} has coef_ of shape {coef.shape}")
        if kind in _RIDGE_CLASSIFIERS and final._label_binarizer.y_type_.startswith("multilabel"):
            raise UnsupportedModelError(f"{name} is multilabel")
        self.final = final
        self.coef = coef
        # The views scikit-learn's expressions take: coef_.T for a 2-D coef_ and SGDRegressor's
        # (a no-op on its 1-D coef_), coef_ itself for other 1-D ones (binary RidgeClassifier).
        self.coef_t: NDArray[Any] = coef.T if coef.ndim == 2 or kind is SGDRegressor else coef
        self.intercept: Any = intercept
        self.ravel = kind is SGDRegressor
        self.classes: NDArray[Any] | None = final.classes_ if self.classifier else None
        self.proba: Proba | None = _proba_kind(final) if self.classifier else None

    def outputs(self) -> dict[Output, Predict]:
        """Output name -> the callable that answers it."""
        outputs: dict[Output, Predict] = {"predict": self.predict}
        if self.proba is not None:
            outputs["predict_proba"] = self.predict_proba
        return outputs

    def describe(self) -> str:
        """The model's kind and size, for the load log."""
        classes = f", {len(self.classes)} classes" if self.classes is not None else ""
        steps = f" after {len(self.transforms)} pipeline steps" if self.transforms else ""
        return f"{type(self.final).__name__}{classes}, {self.n_features} features{steps}"

    def predict(self, X: Any) -> NDArray[Any]:
        return self._predict(self._transform(X))

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        return self._predict_proba(self._transform(X))

    def _transform(self, X: Any) -> Any:
        for step in self.transforms:
            X = step.transform(X)
        return X

    def _fast(self, X: Any) -> bool:
        """Whether scikit-learn's validation would pass ``X`` through untouched and silent."""
        return (
            type(X) is np.ndarray
            and X.ndim == 2
            and X.dtype == np.float64
            and X.shape[0] > 0
            and X.shape[1] == self.n_features
            and (X.flags.c_contiguous or X.flags.f_contiguous)
            and bool(np.isfinite(X).all())
        )

    def _scores(self, X: NDArray[np.float64]) -> NDArray[Any]:
        """LinearClassifierMixin.decision_function after validation."""
        scores: NDArray[Any] = X @ self.coef_t + self.intercept
        if scores.ndim > 1 and scores.shape[1] == 1:
            return np.reshape(scores, (-1,))
        return scores

    def _predict(self, Xt: Any) -> NDArray[Any]:
        if not self._fast(Xt):
            return np.asarray(self.final.predict(Xt))
        if self.classes is None:
            # LinearModel._decision_function (and SGDRegressor's, which ravels).
            values: NDArray[Any] = Xt @ self.coef_t + self.intercept
            return values.ravel() if self.ravel else values
        scores = self._scores(Xt)
        if scores.ndim == 1:
            indices = (scores > 0).astype(_INDEX_DTYPE)
        else:
            indices = np.argmax(scores, axis=1)
        return np.asarray(self.classes.take(indices, axis=0))

    def _predict_proba(self, Xt: Any) -> NDArray[np.float64]:
        if self.proba is None:
            raise AttributeError(f"{type(self.final).__name__} has no predict_proba")
        if not self._fast(Xt):
            return np.asarray(self.final.predict_proba(Xt))
        scores = self._scores(Xt)
        if self.proba == "softmax":
            return _softmax(scores)
        if self.proba == "ovr":
            return _proba_lr(scores)
        return self._modified_huber(scores)

    def _modified_huber(self, scores: NDArray[Any]) -> NDArray[np.float64]:
        """SGDClassifier.predict_proba for loss='modified_huber'."""
        binary = self.classes is not None and len(self.classes) == 2
        if binary:
            prob2 = np.ones((scores.shape[0], 2))
            prob = prob2[:, 1]
        else:
            prob = scores
        np.clip(scores, -1, 1, prob)
        prob += 1.0
        prob /= 2.0
        if binary:
            prob2[:, 0] -= prob
            return prob2
        prob_sum = prob.sum(axis=1)
        all_zero = prob_sum == 0
        if np.any(all_zero):
            prob[all_zero, :] = 1
            prob_sum[all_zero] = len(self.classes) if self.classes is not None else 0
        prob /= prob_sum.reshape((prob.shape[0], -1))
        return prob


def _proba_lr(scores: NDArray[Any]) -> NDArray[np.float64]:
    """LinearClassifierMixin._predict_proba_lr after decision_function."""
    prob: NDArray[np.float64] = expit(scores, out=scores)
    if prob.ndim == 1:
        return np.stack([1 - prob, prob], axis=1)
    prob_sum = prob.sum(axis=1)
    all_zero = prob_sum == 0
    if np.any(all_zero):
        prob[all_zero, :] = 1
        prob_sum[all_zero] = prob.shape[1]
    prob /= np.reshape(prob_sum, (prob.shape[0], -1))
    return prob


def _softmax(X: NDArray[Any]) -> NDArray[np.float64]:
    """sklearn.utils.extmath.softmax(X, copy=False) for a numpy array."""
    max_prob = np.reshape(np.max(X, axis=1), (-1, 1))
    X -= max_prob
    np.exp(X, out=X)
    sum_prob = np.reshape(np.sum(X, axis=1), (-1, 1))
    X /= sum_prob
    return X


def linear_probe_rows(n_features: int, seed: int) -> NDArray[np.float64]:
    """Seeded rows of ``n_features`` values: whole rows at each of :data:`PROBE_SCALES`, rows
    mixing the scales value by value, both signs, exact zeros scattered in, and an all-zero row
    (whose score is the intercept alone, so ``scores > 0`` meets its edge when it is 0)."""
    rng = np.random.default_rng(seed)
    scales = np.asarray(PROBE_SCALES)
    shape = (PROBE_ROWS, n_features)
    per_row = rng.normal(size=shape) * rng.choice(scales, size=(PROBE_ROWS, 1))
    per_value = rng.normal(size=shape) * rng.choice(scales, size=shape)
    signed = rng.choice([-1.0, 1.0], size=shape) * rng.choice(scales, size=shape)
    rows = np.concatenate([per_row, per_value, signed, np.zeros((1, n_features))])
    rows[rng.random(rows.shape) < 0.1] = 0.0
    return rows


def _exact(what: str, got: NDArray[Any], expected: NDArray[Any]) -> str | None:
    """None if ``got`` is ``expected`` bit for bit (same dtype and shape), else what differs."""
    if got.shape != expected.shape or got.dtype != expected.dtype:
        return (
            f"{what} gave {got.dtype}{list(got.shape)}, not {expected.dtype}{list(expected.shape)}"
        )
    if got.dtype.kind in "fc":
        # Bits, not values: -0.0 is not 0.0 here, and NaNs compare by payload.
        bits = np.ascontiguousarray(got).view(np.uint8)
        if np.array_equal(bits, np.ascontiguousarray(expected).view(np.uint8)):
            return None
    elif np.array_equal(got, expected):
        return None
    return f"{what} differs from scikit-learn"


def _check(
    engine: LinearEngine, answer: Any, reference: Any, rows: NDArray[np.float64], what: str
) -> str | None:
    """Compare engine and scikit-learn on the whole of ``rows`` and on small batches of it."""
    batches = [rows, np.asfortranarray(rows)]
    for size in PROBE_BATCHES:
        batches.extend(rows[start : start + size] for start in range(0, 3 * size, size))
    for batch in batches:
        problem = _exact(what, np.asarray(answer(batch)), np.asarray(reference(batch)))
        if problem is not None:
            return f"{problem} on a batch of {len(batch)} rows"
    return None


def verify_linear(engine: LinearEngine, seed: int = 0) -> str | None:
    """None if the engine answers bit for bit as scikit-learn on the probe set, else what
    differed. The final model is checked on probe rows of its own input; a pipeline also as a
    whole, on probe rows of its input, when its earlier steps accept them."""
    rows = linear_probe_rows(engine.n_features, seed)
    final = engine.final
    problem = _check(engine, engine._predict, final.predict, rows, "predict")
    if problem is None and engine.proba is not None:
        problem = _check(engine, engine._predict_proba, final.predict_proba, rows, "predict_proba")
    if problem is not None or not engine.transforms:
        return problem
    n_features = getattr(engine.model, "n_features_in_", None)
    if n_features is None:
        return None
    rows = linear_probe_rows(int(n_features), seed + 1)
    model = engine.model
    try:
        model.predict(rows)
    except (ValueError, TypeError):
        # The earlier steps do not take arbitrary numbers; the final model was checked above.
        return None
    problem = _check(engine, engine.predict, model.predict, rows, "pipeline predict")
    if problem is None and engine.proba is not None:
        problem = _check(
            engine, engine.predict_proba, model.predict_proba, rows, "pipeline predict_proba"
        )
    return problem


def linear_predictor(model: Any, output: Output = "predict") -> Predict | None:
    """The engine's verified callable for ``output`` of ``model``, or None if it cannot serve it."""
    try:
        engine = LinearEngine(model)
    except UnsupportedModelError:
        return None
    if verify_linear(engine, seed=0) is not None:
        return None
    return engine.outputs().get(output)


def select_linear_engine(
    model: Any, manifest: Manifest, fallback: Mapping[Output, Predict], label: str, not_tree: str
) -> Engine:
    """The linear engine for ``model`` if it supports it and matches scikit-learn on its probe
    set, else ``fallback`` (scikit-learn's methods). ``not_tree`` is why the tree engine
    declined. Logs one line."""
    try:
        engine = LinearEngine(model)
        problem = verify_linear(engine)
    except UnsupportedModelError as error:
        reason = f"{not_tree}; {error}"
        log.info("%s: engine %s (%s)", label, ENGINE_SKLEARN, reason)
        return Engine(ENGINE_SKLEARN, fallback, reason)
    except Exception as error:
        # Any surprise in an optional speed-up must leave the version served, by scikit-learn.
        reason = f"the linear engine failed to build: {type(error).__name__}: {error}"
        log.warning("%s: engine %s (%s)", label, ENGINE_SKLEARN, reason)
        return Engine(ENGINE_SKLEARN, fallback, reason)
    if problem is not None:
        reason = f"the linear engine was not used: {problem}"
        log.warning("%s: engine %s (%s)", label, ENGINE_SKLEARN, reason)
        return Engine(ENGINE_SKLEARN, fallback, reason)
    available = engine.outputs()
    outputs = {output: available.get(output, fallback[output]) for output in manifest.outputs}
    log.info(
        "%s: engine %s (matches scikit-learn bit for bit on its probe set; %s)",
        label,
        ENGINE_LINEAR,
        engine.describe(),
    )
    return Engine(ENGINE_LINEAR, outputs)
