"""Artifact formats: bytes to a model and back, and what may run on the way.

A skops artifact is a zip of JSON and arrays; loading it constructs only the types it names, and
those names are audited first: any that is neither trusted by skops itself, nor in
:data:`SKLEARN_MODEL_TYPES`, nor in the caller's trust list refuses the artifact before anything
of it is imported or built. A joblib artifact is a pickle: unpickling runs whatever callables the
file names, so it is loaded only where the caller decided pickles are acceptable.

Everything here is pure (bytes in, objects out) and safe to call from any thread; the only
shared state is the lock around the process-global warnings filters.
"""

from __future__ import annotations

import gc
import io
import threading
import warnings
import zipfile
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from typing import Final

import joblib
import numpy as np
import pandas as pd
import skops.io as sio
from sklearn.exceptions import InconsistentVersionWarning

from service.store.errors import ArtifactError
from service.store.errors import UntrustedArtifactError
from service.store.features import FeatureSchema
from service.store.manifest import ArtifactFormat
from service.store.manifest import Manifest

__all__ = [
    "SKLEARN_MODEL_TYPES",
    "check_same_predictions",
    "dump",
    "format_of",
    "load",
    "untrusted_error",
    "untrusted_types",
]

SKLEARN_MODEL_TYPES: Final[tuple[str, ...]] = (
    # Fitted trees (decision trees, random forests, extra trees, gradient boosting): every
    # demo and bench model holds them.
    "sklearn.tree._tree.Tree",
    # HistGradientBoosting*'s fitted trees.
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # A dtype recorded by fitted transformers such as SimpleImputer.
    "numpy.dtype",
)
"""scikit-learn's own types that fitted estimators need and skops does not trust by default.

None of them names a callable to run; skops leaves the tree types out because it cannot check
their node indices, which a crafted file can point out of bounds (a crash or an out-of-bounds
read at predict time, scikit-learn PR #34558). They are trusted so that ordinary forests and
boosted trees load; the README's threat model says what that leaves open.
"""

# "PK\x03\x04" starts every zip; a pickle starts with its protocol opcode, a compressed joblib
# with its codec's magic, so the two formats cannot be confused.
_ZIP_MAGIC: Final = b"PK\x03\x04"
# warnings.catch_warnings swaps process-global state; loads run in worker threads, so two
# unguarded loads could restore each other's filters or lose each other's warnings.
_WARNINGS_LOCK: Final = threading.Lock()
_PROBE_SEED: Final = 0


def format_of(data: bytes) -> ArtifactFormat:
    """Which format ``data`` is in, by its first bytes: a zip is skops, anything else joblib."""
    return "skops" if data.startswith(_ZIP_MAGIC) else "joblib"


def untrusted_types(
    data: bytes, trusted: Iterable[str], *, name: str, version: int | None
) -> tuple[str, ...]:
    """The types a skops artifact names that are not trusted, sorted; nothing of it is run.

    Args:
        data: The skops bytes.
        trusted: Dotted type names trusted on top of skops' defaults and
            :data:`SKLEARN_MODEL_TYPES`.
        name: The model's name, for errors.
        version: The version, for errors (None while registering).

    Raises:
        ArtifactError: If ``data`` is not a readable skops file.
    """
    try:
        # Reads the schema and builds the node tree; no module is imported and nothing is
        # constructed until load() (skops' own audit in loads works on the same tree).
        named = sio.get_untrusted_types(data=data)
    except Exception as err:
        raise ArtifactError(
            f"the artifact is not a readable skops file: {type(err).__name__}: {err}",
            name=name,
            version=version,
        ) from err
    allowed = {*SKLEARN_MODEL_TYPES, *trusted}
    return tuple(sorted(set(named) - allowed))


def load(
    data: bytes,
    format: ArtifactFormat,
    *,
    trusted: Iterable[str],
    name: str,
    version: int | None,
) -> tuple[Any, str | None]:
    """Build the model in ``data``; return it and the scikit-learn version it was made with
    when scikit-learn reported a different one (else None).

    A skops artifact is audited first; a joblib artifact is unpickled as it is, so the caller
    must already have decided that pickles are acceptable.

    Raises:
        UntrustedArtifactError: If a skops artifact names a type that is not trusted.
        ArtifactError: If the bytes do not load.
    """
    trusted = tuple(trusted)
    if format == "skops":
        refused = untrusted_types(data, trusted, name=name, version=version)
        if refused:
            raise untrusted_error(refused, name=name, version=version)
        # Exactly the types the audit accepted; skops audits them again before constructing.
        allowed = [*SKLEARN_MODEL_TYPES, *trusted]
        loaded = _capturing_version(
            lambda: sio.loads(data, trusted=allowed), "loaded", name, version
        )
        # skops' node tree leaves reference cycles holding the file's arrays; collected by the
        # interpreter later, they cost a full collection at an arbitrary moment under load (the
        # overload test's p99 was 2.0-5.7 s instead of 0.8-1.1 s with joblib). Collected here, in
        # the loading thread before the version serves: 0.7-0.9 s, as with joblib.
        gc.collect()
        return loaded
    return _capturing_version(lambda: joblib.load(io.BytesIO(data)), "unpickled", name, version)


def untrusted_error(
    types: tuple[str, ...], *, name: str, version: int | None
) -> UntrustedArtifactError:
    """The error refusing an artifact that holds ``types``, naming them and the way out."""
    return UntrustedArtifactError(
        f"the artifact holds types that are not trusted: {', '.join(types)}; add them to "
        f"PREDICTION_TRUSTED_TYPES only if you trust their code",
        name=name,
        version=version,
        types=types,
    )


def dump(model: object, format: ArtifactFormat, *, name: str) -> bytes:
    """Serialise ``model`` as ``format``.

    Raises:
        ArtifactError: If the model holds something the format cannot represent.
    """
    buffer = io.BytesIO()
    try:
        if format == "skops":
            # Deflate: a forest's many small arrays shrink 10x (iris: 1.85 MB to 0.18 MB) and
            # load as fast as stored ones.
            data: bytes = sio.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
            return data
        joblib.dump(model, buffer)
    except Exception as err:
        raise ArtifactError(
            f"the {type(model).__name__} cannot be saved as {format}: {type(err).__name__}: {err}",
            name=name,
        ) from err
    return buffer.getvalue()


def check_same_predictions(
    original: Any, converted: Any, manifest: Manifest, *, example: pd.DataFrame | None = None
) -> None:
    """Check that ``converted`` answers every probe exactly as ``original`` does.

    The probes are fixed random rows at several scales, plus small integers and zeros (as
    category codes and flags look); for a model with a feature schema they are tables of the
    schema's types, cycling through known categories and leaving nullable columns partly missing.
    A probe ``original`` rejects must be rejected by ``converted`` with the same exception type.

    Args:
        original: The model as it was given.
        converted: The model as it loads from the written artifact.
        manifest: The manifest being written.
        example: Rows of the table a model with a feature schema takes, probed too: its string
            columns hold values the model knows where the schema lists none.

    Raises:
        ArtifactError: If an answer differs, or ``original`` rejects every probe (then nothing
            was compared).
    """
    compared = 0
    for output in manifest.outputs:
        probes: list[Any] = (
            list(_probes(manifest.n_features))
            if manifest.features is None
            else [*_table_probes(manifest.features), *_example_probe(example, manifest.features)]
        )
        for rows in probes:
            expected = _answer(getattr(original, output), rows)
            actual = _answer(getattr(converted, output), rows)
            if isinstance(expected, BaseException) or isinstance(actual, BaseException):
                if type(expected) is not type(actual):
                    raise _differs(manifest, output, f"{_shown(expected)} != {_shown(actual)}")
                continue
            if expected.shape != actual.shape or expected.dtype != actual.dtype:
                raise _differs(
                    manifest,
                    output,
                    f"{expected.dtype}{expected.shape} != {actual.dtype}{actual.shape}",
                )
            if not np.array_equal(expected, actual, equal_nan=expected.dtype.kind in "fc"):
                raise _differs(manifest, output, "different values")
            compared += 1
    if not compared:
        hint = "" if manifest.features is None else "; give an example table it accepts"
        raise ArtifactError(
            f"cannot check the converted model: the original rejects every probe row{hint}",
            name=manifest.name,
            version=manifest.version,
        )


def _probes(n_features: int) -> list[np.ndarray[Any, np.dtype[np.float64]]]:
    rng = np.random.default_rng(_PROBE_SEED)
    return [
        rng.standard_normal((64, n_features)),
        rng.standard_normal((16, n_features)) * 100.0,
        rng.integers(0, 5, size=(16, n_features)).astype(np.float64),
        np.zeros((1, n_features)),
    ]


def _table_probes(schema: FeatureSchema) -> list[pd.DataFrame]:
    rng = np.random.default_rng(_PROBE_SEED)
    return [_table(schema, rng, rows, scale) for rows, scale in ((64, 1.0), (16, 100.0), (1, 0.0))]


def _example_probe(example: pd.DataFrame | None, schema: FeatureSchema) -> list[pd.DataFrame]:
    if example is None or not set(schema.names) <= set(example.columns):
        return []
    return [example.loc[:, list(schema.names)].head(64)]


def _table(
    schema: FeatureSchema, rng: np.random.Generator, rows: int, scale: float
) -> pd.DataFrame:
    columns: dict[str, Any] = {}
    for feature in schema.features:
        values: np.ndarray[Any, Any]
        if feature.type == "string":
            known = feature.categories or ("a", "b")
            values = np.array([known[i % len(known)] for i in range(rows)], dtype=object)
        elif feature.type == "bool":
            values = np.arange(rows) % 2 == 0
        elif feature.type == "int":
            values = rng.integers(0, 5, size=rows) * max(int(scale), 1)
        else:
            values = rng.standard_normal(rows) * scale
        if feature.nullable and rows > 1:
            # As a DataFrame carries a missing value: NaN, in a float or object column.
            values = values.astype(object if feature.type in ("string", "bool") else np.float64)
            values[::3] = np.nan
        columns[feature.name] = values
    return pd.DataFrame(columns)


def _answer(method: Callable[[Any], Any], rows: np.ndarray[Any, Any] | pd.DataFrame) -> Any:
    try:
        return np.asarray(method(rows))
    except Exception as err:
        return err


def _shown(answer: object) -> str:
    return type(answer).__name__ if isinstance(answer, BaseException) else "an answer"


def _differs(manifest: Manifest, output: str, how: str) -> ArtifactError:
    return ArtifactError(
        f"the converted model's {output}() differs from the original's on the probe rows "
        f"({how}); nothing was replaced",
        name=manifest.name,
        version=manifest.version,
    )


def _capturing_version(
    build: Callable[[], Any], verb: str, name: str, version: int | None
) -> tuple[Any, str | None]:
    with _WARNINGS_LOCK, warnings.catch_warnings(record=True) as caught:
        # "always": a warning already shown once (e.g. an earlier load) must still be recorded.
        warnings.simplefilter("always")
        try:
            model = build()
        except Exception as err:
            raise ArtifactError(
                f"the artifact cannot be {verb}: {type(err).__name__}: {err}",
                name=name,
                version=version,
            ) from err
    pickled_version: str | None = None
    for record in caught:
        if isinstance(record.message, InconsistentVersionWarning):
            pickled_version = record.message.original_sklearn_version
        else:
            # Other warnings were only captured as a side effect; hand them back to the caller's
            # filters instead of swallowing them.
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
    return model, pickled_version
