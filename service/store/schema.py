"""Inferring the feature schema of a model fitted on a table, and reading the files that help.

A model fitted on a pandas DataFrame records its column names (``feature_names_in_``); their
types, whether they may be missing and a string column's categories come from what its fitted
steps prove (an encoder's ``categories_``, an imputer's strategy, a numeric transformer), and
an example table's dtypes and missing values, where one is given, have the last word on types
and nullability. A declared schema wins over both. A model
fitted on numpy arrays has no column names and gets no schema: it is served all-numeric. A
model fitted on a DataFrame of numbers gets one too, all float, so that its rows may keep
naming their columns.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import Final

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.preprocessing import MaxAbsScaler
from sklearn.preprocessing import MinMaxScaler
from sklearn.preprocessing import OneHotEncoder
from sklearn.preprocessing import OrdinalEncoder
from sklearn.preprocessing import PowerTransformer
from sklearn.preprocessing import QuantileTransformer
from sklearn.preprocessing import RobustScaler
from sklearn.preprocessing import StandardScaler

from service.store.errors import FeatureSchemaError
from service.store.features import Feature
from service.store.features import FeatureSchema
from service.store.features import FeatureType

__all__ = ["infer_schema", "read_example", "read_schema"]

# Transformers whose output column i is input column i, scaled: a later step (an imputer)
# still tells something about the same column.
_ELEMENTWISE: Final = (
    MaxAbsScaler,
    MinMaxScaler,
    PowerTransformer,
    QuantileTransformer,
    RobustScaler,
    StandardScaler,
)
# What pandas.api.types.infer_dtype calls an example column's values (missing ones skipped).
_EXAMPLE_TYPES: Final[dict[str, FeatureType]] = {
    "string": "string",
    "boolean": "bool",
    "integer": "int",
    "floating": "float",
    "mixed-integer-float": "float",
    "decimal": "float",
}
# A numeric imputer strategy means the column was numbers.
_NUMERIC_STRATEGIES: Final = frozenset({"mean", "median"})
# With these, an encoder accepts strings it never saw, so its categories do not limit requests.
_ACCEPTS_UNKNOWN: Final = frozenset({"ignore", "infrequent_if_exist", "use_encoded_value", "warn"})


@dataclass(frozen=True, slots=True)
class _Reading:
    """What one step that reads a column proves about it."""

    type: FeatureType | None = None
    nullable: bool = False
    categories: tuple[str, ...] | None = None


def infer_schema(
    model: object,
    *,
    example: pd.DataFrame | None = None,
    declared: FeatureSchema | None = None,
    name: str | None = None,
) -> FeatureSchema | None:
    """The feature schema of a fitted model, or None for a model fitted on numpy arrays.

    Args:
        model: The fitted estimator or Pipeline.
        example: Rows of the table the model takes (extra columns are ignored): a column's dtype
            decides its type, and whether it has a missing value decides whether it is
            nullable (even where an imputer would fill one in: the example shows what the
            data holds).
        declared: A schema written out by hand; it wins over inference, once its names are
            checked against the model's.
        name: The model's name, for errors.

    Raises:
        FeatureSchemaError: If a column's type cannot be told (they are named), the example
            lacks a column, or the declared schema names other columns than the model's; or an
            example was given for a model fitted without column names.
    """
    names = _fitted_names(model)
    if declared is not None:
        if names is not None and declared.names != names:
            raise FeatureSchemaError(
                f"the schema names the columns {', '.join(declared.names)} but the model was "
                f"fitted on {', '.join(names)}",
                name=name,
            )
        return declared
    if names is None:
        if example is not None:
            raise FeatureSchemaError(
                "the model was fitted without column names (no feature_names_in_), so an "
                "example table cannot be matched to its features; give the schema instead",
                name=name,
            )
        return None
    readings = _combined(names, _walk(model, names))
    if example is not None:
        readings = _with_example(readings, example, name)
    unknown = [column for column in names if readings[column].type is None]
    if unknown:
        raise FeatureSchemaError(
            f"cannot tell the type of {_columns(unknown)}: no fitted step "
            f"shows what it holds (it is passed on as it is, or unused); give an example table "
            f"(--example FILE) or the schema (--schema FILE)",
            name=name,
        )
    return FeatureSchema(tuple(_feature(column, readings[column]) for column in names))


def read_example(path: Path) -> pd.DataFrame:
    """Read an example table: a CSV file with a header, or a JSON list of row objects.

    CSV columns get pandas' nullable dtypes, so an integer column with blanks stays integer.

    Raises:
        FeatureSchemaError: If the file cannot be read or holds no rows.
    """
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".csv":
            table = pd.read_csv(path, dtype_backend="numpy_nullable")
        elif suffix == ".json":
            table = _json_rows(json.loads(Path(path).read_bytes()))
        else:
            raise FeatureSchemaError(
                f"the example {path} must be a .csv or a .json file, not {suffix or 'unnamed'}"
            )
    except (OSError, ValueError) as err:
        raise FeatureSchemaError(f"cannot read the example {path}: {err}") from err
    if table.empty:
        raise FeatureSchemaError(f"the example {path} holds no rows")
    return table


def read_schema(path: Path) -> FeatureSchema:
    """Read a schema file: a JSON list of feature objects, as a manifest's ``features``.

    Raises:
        FeatureSchemaError: If the file cannot be read or is not a valid schema.
    """
    try:
        return FeatureSchema.from_json(json.loads(Path(path).read_bytes()))
    except (OSError, ValueError) as err:
        raise FeatureSchemaError(f"cannot read the schema {path}: {err}") from err


def _json_rows(document: object) -> pd.DataFrame:
    if not isinstance(document, list) or not all(isinstance(row, dict) for row in document):
        raise ValueError("it must be a JSON list of row objects")
    # dtype=object keeps each value as JSON gave it, so 3 stays an int beside a null and 3.0
    # stays a float; pandas would make both float64.
    return pd.DataFrame(document, dtype=object)


def _fitted_names(model: object) -> tuple[str, ...] | None:
    names = getattr(model, "feature_names_in_", None)
    return None if names is None else tuple(str(item) for item in names)


def _walk(step: Any, columns: Sequence[str]) -> list[tuple[str, _Reading]]:
    """What ``step`` proves about each of ``columns``, the columns it is given, in that order."""
    if isinstance(step, Pipeline):
        return _walk_pipeline(step, columns)
    if isinstance(step, ColumnTransformer):
        return _walk_columns(step, columns)
    return list(zip(columns, _leaf(step, len(columns)), strict=True))


def _walk_pipeline(pipeline: Pipeline, columns: Sequence[str]) -> list[tuple[str, _Reading]]:
    # Only the steps up to the first that changes the columns see them; what each proves adds up.
    so_far = [_Reading() for _ in columns]
    for _, step in pipeline.steps:
        if _is_passthrough(step):
            continue
        if isinstance(step, Pipeline | ColumnTransformer):
            return [
                (column, _merged(so_far[columns.index(column)], reading))
                for column, reading in _walk(step, columns)
            ]
        so_far = [
            _merged(before, reading)
            for before, reading in zip(so_far, _leaf(step, len(columns)), strict=True)
        ]
        if not _keeps_columns(step):
            break
    return list(zip(columns, so_far, strict=True))


def _walk_columns(
    transformer: ColumnTransformer, columns: Sequence[str]
) -> list[tuple[str, _Reading]]:
    readings: list[tuple[str, _Reading]] = []
    # After fitting, transformers_ holds every column list resolved (make_column_selector
    # included) and the remainder as indices.
    for _, step, selection in transformer.transformers_:
        if isinstance(step, str) and step == "drop":
            continue
        selected = _selected(selection, columns)
        if selected:
            readings.extend(_walk(step, selected))
    return readings


def _selected(selection: Any, columns: Sequence[str]) -> list[str]:
    """The names a ColumnTransformer's column selection picks out of ``columns``."""
    if isinstance(selection, str):
        return [selection]
    if isinstance(selection, slice):
        start = columns.index(selection.start) if isinstance(selection.start, str) else None
        # A slice of names includes its end, as pandas' .loc does.
        stop = columns.index(selection.stop) + 1 if isinstance(selection.stop, str) else None
        if start is None and stop is None:
            return list(columns[selection])
        return list(columns[start:stop])
    picked = np.asarray(selection)
    if picked.dtype.kind == "b":
        return [column for column, keep in zip(columns, picked, strict=True) if keep]
    if picked.dtype.kind in "iu":
        return [columns[int(index)] for index in picked]
    return [str(item) for item in picked]


def _leaf(step: Any, n_columns: int) -> list[_Reading]:
    """What a step that is not a Pipeline or ColumnTransformer proves about each input column."""
    if _is_passthrough(step):
        return [_Reading()] * n_columns
    if isinstance(step, SimpleImputer):
        return _imputer(step, n_columns)
    if isinstance(step, OneHotEncoder | OrdinalEncoder):
        accepts_unknown = step.handle_unknown in _ACCEPTS_UNKNOWN
        return [_categories(list(values), accepts_unknown) for values in step.categories_]
    if isinstance(step, CountVectorizer | HashingVectorizer):  # TfidfVectorizer included
        return [_Reading(type="string")] * n_columns
    if isinstance(step, FunctionTransformer) or not type(step).__module__.startswith("sklearn."):
        # Arbitrary code: it may take anything.
        return [_Reading()] * n_columns
    # scikit-learn's other transformers and estimators compute on numbers.
    return [_Reading(type="float")] * n_columns


def _imputer(imputer: SimpleImputer, n_columns: int) -> list[_Reading]:
    nullable = _is_missing(imputer.missing_values)
    if imputer.strategy in _NUMERIC_STRATEGIES:
        return [_Reading(type="float", nullable=nullable)] * n_columns
    statistics = list(getattr(imputer, "statistics_", [None] * n_columns))
    return [
        _Reading(type="string" if isinstance(value, str) else None, nullable=nullable)
        for value in statistics
    ]


def _categories(values: Sequence[Any], accepts_unknown: bool) -> _Reading:
    known = [value for value in values if not _is_missing(value)]
    # An encoder fitted with missing values lists NaN (or None) as a category of its own.
    nullable = len(known) < len(values)
    if known and all(isinstance(value, str) for value in known):
        categories = None if accepts_unknown else tuple(known)
        return _Reading(type="string", nullable=nullable, categories=categories)
    if known and all(isinstance(value, bool | np.bool_) for value in known):
        return _Reading(type="bool", nullable=nullable)
    if known and all(isinstance(value, int | np.integer) for value in known):
        return _Reading(type="int", nullable=nullable)
    return _Reading(type="float", nullable=nullable)


def _keeps_columns(step: Any) -> bool:
    if isinstance(step, SimpleImputer):
        return not step.add_indicator
    return isinstance(step, _ELEMENTWISE)


def _is_passthrough(step: Any) -> bool:
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return True
    # A fitted ColumnTransformer holds "passthrough" as an identity FunctionTransformer.
    return isinstance(step, FunctionTransformer) and step.func is None


def _is_missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _merged(first: _Reading, then: _Reading) -> _Reading:
    """One column's reading after two steps in a row: the first to type it decides its type."""
    return _Reading(
        type=first.type or then.type,
        nullable=first.nullable or then.nullable,
        categories=first.categories if first.categories is not None else then.categories,
    )


def _combined(
    names: Sequence[str], readings: Iterable[tuple[str, _Reading]]
) -> dict[str, _Reading]:
    """One reading per column, from the branches that read it side by side."""
    by_column: dict[str, list[_Reading]] = {column: [] for column in names}
    for column, reading in readings:
        by_column[column].append(reading)
    combined: dict[str, _Reading] = {}
    for column, found in by_column.items():
        if not found:
            # Dropped: the model never reads it, so it may be missing, but its type is unknown.
            combined[column] = _Reading(nullable=True)
            continue
        typed = [reading for reading in found if reading.type is not None]
        first = typed[0] if typed else found[0]
        # Every branch reading the column must tolerate a missing value.
        combined[column] = replace(first, nullable=all(reading.nullable for reading in found))
    return combined


def _with_example(
    readings: dict[str, _Reading], example: pd.DataFrame, name: str | None
) -> dict[str, _Reading]:
    absent = [column for column in readings if column not in example.columns]
    if absent:
        raise FeatureSchemaError(f"the example table has no {_columns(absent)}", name=name)
    updated: dict[str, _Reading] = {}
    for column, reading in readings.items():
        values = example[column]
        kind = pd.api.types.infer_dtype(values, skipna=True)
        updated[column] = _Reading(
            type=_EXAMPLE_TYPES.get(kind, reading.type),
            nullable=bool(values.isna().any()),
            categories=reading.categories,
        )
    return updated


def _columns(names: Sequence[str]) -> str:
    """``column 'a'`` or ``columns 'a', 'b'``, for messages."""
    return f"column{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"


def _feature(column: str, reading: _Reading) -> Feature:
    assert reading.type is not None  # the caller refused untyped columns
    categories = reading.categories if reading.type == "string" else None
    return Feature(column, reading.type, nullable=reading.nullable, categories=categories)
