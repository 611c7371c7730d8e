"""The manifest (``model.json``) that describes one stored model version, and its validation."""

from __future__ import annotations

import json
import math
import platform
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from typing import Any
from typing import Final
from typing import Literal
from typing import get_args

import numpy as np
import sklearn
from sklearn.base import is_classifier

from service.store.errors import ArtifactError
from service.store.errors import ManifestError
from service.store.features import FeatureSchema

__all__ = [
    "ARTIFACT_FILE",
    "ARTIFACT_FILES",
    "FORMATS",
    "FRAMEWORK",
    "MANIFEST_FILE",
    "NAME_PATTERN",
    "OUTPUTS",
    "SKOPS_FILE",
    "ArtifactFormat",
    "Manifest",
    "Output",
    "Task",
    "utc_now",
]

Task = Literal["classification", "regression"]
Output = Literal["predict", "predict_proba"]
"""A model method a version serves; each has its own batcher and its own V2 output tensor."""
OUTPUTS: Final[tuple[Output, ...]] = ("predict", "predict_proba")
ArtifactFormat = Literal["skops", "joblib"]
"""How an artifact is serialised: ``skops`` (loads only trusted types) or ``joblib`` (a pickle)."""

FORMATS: Final[tuple[ArtifactFormat, ...]] = get_args(ArtifactFormat)
MANIFEST_FILE: Final = "model.json"
SKOPS_FILE: Final = "model.skops"
ARTIFACT_FILE: Final = "model.joblib"
"""The file name of a joblib artifact, as every version of a first-release store has."""
ARTIFACT_FILES: Final[dict[ArtifactFormat, str]] = {"skops": SKOPS_FILE, "joblib": ARTIFACT_FILE}
FRAMEWORK: Final = "scikit-learn"
# Model names become directory names and URL path segments: no separators, no leading dot
# (so temp dirs and hidden files never look like models), and short enough for any filesystem.
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

_TASKS: Final[tuple[str, ...]] = get_args(Task)
_OUTPUTS: Final = (OUTPUTS[:1], OUTPUTS)
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_RFC3339_UTC: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)")
# A fixed JSON field order (the README's, under Model store) keeps manifests diffing cleanly.
_FIELDS: Final = (
    "name",
    "version",
    "artifact",
    "sha256",
    "framework",
    "framework_version",
    "python_version",
    "created_at",
    "task",
    "n_features",
    "feature_names",
    "classes",
    "outputs",
)
# Fields a manifest may leave out, with the value that absence means: a first-release store's
# manifests have no ``format``, and all of its artifacts are joblib.
_OPTIONAL_FIELDS: Final[dict[str, object]] = {"format": "joblib"}


def utc_now() -> str:
    """Return the current time as RFC 3339 UTC with a ``Z`` suffix and whole seconds."""
    return datetime.now(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


class _FieldError(Exception):
    """One bad field; :class:`Manifest` turns it into a :class:`ManifestError` with context."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"field '{field}' {problem}")


def _check_str(field: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _FieldError(field, f"must be a non-empty string, got {_shown(value)}")
    return value


def _check_positive_int(field: str, value: object) -> int:
    # bool is an int subclass, and JSON true must not pass for version 1.
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _FieldError(field, f"must be a positive integer, got {_shown(value)}")
    return value


def _check_str_tuple(field: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, tuple) or not all(isinstance(item, str) and item for item in value):
        raise _FieldError(field, f"must be a list of non-empty strings, got {_shown(value)}")
    return value


def _check_label(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int | str)


def _labels(values: Sequence[object]) -> tuple[int | float | str, ...] | None:
    """Return ``values`` as class labels, or None if one is not a string or finite number."""
    labels: list[int | float | str] = []
    for value in values:
        # numpy scalars are not JSON serialisable and would not equal their own round trip.
        item = value.item() if isinstance(value, np.generic) else value
        if not isinstance(item, int | float | str) or not _check_label(item):
            return None
        labels.append(item)
    return tuple(labels)


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _features(value: object) -> FeatureSchema | None:
    if value is None:
        return None
    try:
        return FeatureSchema.from_json(value)
    except ValueError as err:
        raise _FieldError("features", str(err)) from None


def _validate(manifest: Manifest) -> None:
    name = _check_str("name", manifest.name)
    if NAME_PATTERN.fullmatch(name) is None:
        raise _FieldError("name", f"must match {NAME_PATTERN.pattern}, got {_shown(name)}")
    _check_positive_int("version", manifest.version)
    artifact = _check_str("artifact", manifest.artifact)
    # The artifact is opened relative to the version directory; a path here could escape it.
    if "/" in artifact or "\\" in artifact or "\0" in artifact or artifact in {".", ".."}:
        raise _FieldError("artifact", f"must be a plain file name, got {_shown(artifact)}")
    sha256 = _check_str("sha256", manifest.sha256)
    if _SHA256.fullmatch(sha256) is None:
        raise _FieldError("sha256", f"must be 64 lowercase hex digits, got {_shown(sha256)}")
    if manifest.framework != FRAMEWORK:
        raise _FieldError("framework", f"must be '{FRAMEWORK}', got {_shown(manifest.framework)}")
    _check_str("framework_version", manifest.framework_version)
    _check_str("python_version", manifest.python_version)
    created_at = _check_str("created_at", manifest.created_at)
    if _RFC3339_UTC.fullmatch(created_at) is None:
        raise _FieldError("created_at", f"must be an RFC 3339 UTC time, got {_shown(created_at)}")
    try:
        datetime.fromisoformat(created_at)
    except ValueError:
        raise _FieldError("created_at", f"is not a valid time, got {_shown(created_at)}") from None
    task: object = manifest.task
    if task not in _TASKS:
        raise _FieldError("task", f"must be one of {', '.join(_TASKS)}, got {_shown(task)}")
    n_features = _check_positive_int("n_features", manifest.n_features)
    if manifest.feature_names is not None:
        feature_names = _check_str_tuple("feature_names", manifest.feature_names)
        if len(feature_names) != n_features:
            raise _FieldError(
                "feature_names", f"has {len(feature_names)} names but n_features is {n_features}"
            )
        if len(set(feature_names)) != len(feature_names):
            raise _FieldError("feature_names", f"has duplicate names: {_shown(feature_names)}")
    classes: object = manifest.classes
    if classes is not None:
        if task == "regression":
            raise _FieldError("classes", "must be null for a regression model")
        if not isinstance(classes, tuple) or not classes or not all(map(_check_label, classes)):
            raise _FieldError(
                "classes",
                f"must be null or a non-empty list of strings or finite numbers, "
                f"got {_shown(classes)}",
            )
    outputs: object = manifest.outputs
    if outputs not in _OUTPUTS:
        allowed = " or ".join(json.dumps(list(item)) for item in _OUTPUTS)
        raise _FieldError("outputs", f"must be {allowed}, got {_shown(outputs)}")
    if manifest.format not in FORMATS:
        raise _FieldError(
            "format", f"must be one of {', '.join(FORMATS)}, got {_shown(manifest.format)}"
        )
    features: object = manifest.features
    if features is not None:
        if not isinstance(features, FeatureSchema):
            raise _FieldError("features", f"must be a feature schema, got {_shown(features)}")
        if len(features.features) != n_features:
            raise _FieldError(
                "features", f"has {len(features.features)} features but n_features is {n_features}"
            )
        if manifest.feature_names != features.names:
            raise _FieldError("features", "must name the same columns, in order, as feature_names")


def _is_classifier(model: object) -> bool:
    try:
        return bool(is_classifier(model))
    except AttributeError:
        # scikit-learn >= 1.6 raises for objects without __sklearn_tags__ (hand-written
        # predictors); a fitted classifier is recognisable by its classes_.
        return hasattr(model, "classes_")


@dataclass(frozen=True, slots=True)
class Manifest:
    """What ``model.json`` says about one version; every instance is valid.

    Raises:
        ManifestError: On construction, naming the first field that is missing, ill-typed or
            inconsistent with another (e.g. ``feature_names`` of the wrong length).
    """

    name: str
    version: int
    artifact: str
    """The artifact's file name inside the version directory (``model.joblib``)."""
    sha256: str
    """Lowercase hex sha256 of the artifact's bytes."""
    framework: str
    framework_version: str
    """``sklearn.__version__`` at registration."""
    python_version: str
    created_at: str
    """RFC 3339 UTC, e.g. ``2026-11-21T22:30:00Z``."""
    task: Task
    n_features: int
    feature_names: tuple[str, ...] | None
    classes: tuple[int | float | str, ...] | None
    """Class labels as plain Python scalars, in the model's ``classes_`` order."""
    outputs: tuple[Output, ...]
    """``("predict",)`` or ``("predict", "predict_proba")``."""
    format: ArtifactFormat = "joblib"
    """How the artifact is serialised; a manifest without the field is a first-release joblib."""
    features: FeatureSchema | None = None
    """The typed input columns of a model fitted on a table; None (absent) means all-numeric."""

    def __post_init__(self) -> None:
        try:
            _validate(self)
        except _FieldError as err:
            raise ManifestError(
                str(err), name=_str_or_none(self.name), version=_int_or_none(self.version)
            ) from None

    def to_json(self) -> bytes:
        """Return the manifest as an indented JSON object with the README's field names."""
        document: dict[str, object] = {}
        for field in (*_FIELDS, *_OPTIONAL_FIELDS):
            value = getattr(self, field)
            document[field] = list(value) if isinstance(value, tuple) else value
        if self.features is not None:
            document["features"] = self.features.to_json()
        return json.dumps(document, indent=2, allow_nan=False).encode() + b"\n"

    @classmethod
    def from_json(cls, data: bytes, *, source: str) -> Manifest:
        """Parse and validate a manifest.

        Unknown fields are ignored so that a newer writer's manifests stay readable.

        Args:
            data: The bytes of ``model.json``.
            source: Where the bytes came from (a path), named in every error.

        Raises:
            ManifestError: If the bytes are not a JSON object or any field is missing or bad.
        """
        try:
            document = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError(f"manifest {source} is not valid JSON: {err}") from err
        if not isinstance(document, dict):
            raise ManifestError(
                f"manifest {source} must be a JSON object, got {type(document).__name__}"
            )
        missing = [field for field in _FIELDS if field not in document]
        if missing:
            raise ManifestError(
                f"manifest {source}: field '{missing[0]}' is missing",
                name=_str_or_none(document.get("name")),
                version=_int_or_none(document.get("version")),
            )
        fields: dict[str, Any] = {
            field: tuple(value) if isinstance(value, list) else value
            for field, value in document.items()
            if field in _FIELDS or field in _OPTIONAL_FIELDS
        }
        try:
            fields["features"] = _features(document.get("features"))
            return cls(**fields)
        except _FieldError as err:
            raise ManifestError(
                f"manifest {source}: {err}",
                name=_str_or_none(document.get("name")),
                version=_int_or_none(document.get("version")),
            ) from None
        except ManifestError as err:
            raise ManifestError(
                f"manifest {source}: {err.detail}", name=err.name, version=err.version
            ) from None

    @classmethod
    def describe(
        cls,
        model: object,
        *,
        name: str,
        version: int,
        sha256: str,
        feature_names: Sequence[str] | None = None,
        created_at: str | None = None,
        format: ArtifactFormat = "skops",
        features: FeatureSchema | None = None,
    ) -> Manifest:
        """Describe a fitted model for the manifest of version ``version`` of ``name``.

        Args:
            model: The fitted estimator (as unpickled from the artifact).
            name: The model's name.
            version: The version being written.
            sha256: Lowercase hex sha256 of the artifact's bytes.
            feature_names: Names of the input columns; defaults to the model's
                ``feature_names_in_`` (set when it was fitted on a DataFrame), else none.
            created_at: RFC 3339 UTC time; defaults to now.
            format: How the artifact is serialised; names the artifact's file.
            features: The typed input columns of a model fitted on a table; their names are
                the feature names.

        Raises:
            ArtifactError: If the model has no ``n_features_in_`` (it is not fitted) or its
                ``classes_`` are not a flat list of labels.
            ManifestError: If ``feature_names`` does not have ``n_features`` unique names.
        """
        n_features_in: object = getattr(model, "n_features_in_", None)
        if not isinstance(n_features_in, int | np.integer) or isinstance(n_features_in, bool):
            raise ArtifactError(
                "the model has no n_features_in_; is it a fitted scikit-learn estimator?",
                name=name,
                version=version,
            )
        if isinstance(feature_names, str):
            # A str is a Sequence[str] too, and would silently become one name per letter.
            raise ManifestError(
                "field 'feature_names' must be a list of names, not one string",
                name=name,
                version=version,
            )
        if feature_names is None and features is not None:
            feature_names = features.names
        if feature_names is None and hasattr(model, "feature_names_in_"):
            feature_names = [str(item) for item in model.feature_names_in_]
        classifier = _is_classifier(model)
        classes: tuple[int | float | str, ...] | None = None
        if classifier and hasattr(model, "classes_"):
            labels = np.asarray(model.classes_)
            if labels.ndim != 1:
                raise ArtifactError(
                    "the model's classes_ is not one-dimensional; "
                    "multi-output classifiers are not supported",
                    name=name,
                    version=version,
                )
            classes = _labels(list(labels))
            if classes is None:
                raise ArtifactError(
                    f"the model's classes_ are not strings or finite numbers: {_shown(labels)}",
                    name=name,
                    version=version,
                )
        outputs = OUTPUTS if hasattr(model, "predict_proba") else OUTPUTS[:1]
        return cls(
            name=name,
            version=version,
            artifact=ARTIFACT_FILES[format],
            sha256=sha256,
            framework=FRAMEWORK,
            framework_version=sklearn.__version__,
            python_version=platform.python_version(),
            created_at=utc_now() if created_at is None else created_at,
            task="classification" if classifier else "regression",
            n_features=int(n_features_in),
            feature_names=None if feature_names is None else tuple(feature_names),
            classes=classes,
            outputs=outputs,
            format=format,
            features=features,
        )
