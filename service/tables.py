"""Table models: request rows checked against a feature schema, and one DataFrame per batch.

A version whose manifest has ``features`` was fitted on a pandas DataFrame. Its requests carry
strings, booleans and missing values, so they cannot become a float64 matrix. Each request's
rows become instead a 2-D object array (rows x features) of checked Python values, ``None``
where a value is missing; the batcher concatenates those like any array, and the model call
(:func:`table_outputs`) turns the batch into one DataFrame with the schema's dtypes.

A column's dtype depends on the schema, never on which rows share a batch (a column entirely
missing in one request is still a ``str`` or ``float64`` column), so a row gets the same answer
alone or batched.

Threads: checking runs on the event loop; the frame is built in the batch's model call (a
worker thread), from arrays no other thread touches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Final

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from service.errors import InvalidInputError
from service.errors import TooManyRowsError
from service.inputs import describe_value
from service.inputs import matrix_from_rows
from service.store import Manifest
from service.store import Output
from service.store.features import Feature
from service.store.features import FeatureSchema

__all__ = [
    "check_value",
    "frame_from_table",
    "model_input",
    "table_from_columns",
    "table_from_rows",
    "table_outputs",
    "warm_up_table",
]

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


def model_input(rows: Sequence[object], manifest: Manifest, *, max_rows: int) -> NDArray[Any]:
    """The model input for JSON rows: a table for a table model, else the float64 matrix.

    Raises:
        InvalidInputError: the rows do not fit the model; the message names the row and field.
        TooManyRowsError: more than ``max_rows`` rows.
    """
    schema = manifest.features
    if schema is None:
        return matrix_from_rows(
            rows,
            n_features=manifest.n_features,
            feature_names=manifest.feature_names,
            max_rows=max_rows,
        )
    return table_from_rows(rows, schema, max_rows=max_rows)


def check_value(feature: Feature, value: object) -> str | None:
    """Why ``value`` (decoded JSON; ``None`` for missing) cannot be ``feature``'s; None if it can.

    float takes finite numbers, int takes integers in the int64 range (not 3.0: a float is
    refused rather than silently truncated), bool takes true and false, string takes strings.
    Only a nullable feature takes ``None``.
    """
    # type() and not isinstance(): bool is an int, and true is no number.
    if value is None:
        return None if feature.nullable else "null is not allowed (the feature is not nullable)"
    if feature.type == "float":
        if type(value) is float:
            return None if math.isfinite(value) else f"{value!r} is not a finite number"
        if type(value) is int:
            return None if _INT64_MIN <= value <= _INT64_MAX else "the number is out of range"
        return f"{describe_value(value)} is not a number"
    if feature.type == "int":
        if type(value) is int:
            return None if _INT64_MIN <= value <= _INT64_MAX else "the integer is out of range"
        return f"{describe_value(value)} is not an integer"
    if feature.type == "bool":
        return None if type(value) is bool else f"{describe_value(value)} is not true or false"
    return None if type(value) is str else f"{describe_value(value)} is not a string"


def table_from_rows(
    rows: Sequence[object], schema: FeatureSchema, *, max_rows: int
) -> NDArray[np.object_]:
    """Check rows against ``schema`` and stack them into a ``(n_rows, n_features)`` object array.

    A row is an array of values in the schema's order, or an object keyed by feature name:
    there, an absent field is missing where the feature is nullable, and unknown fields are
    refused. JSON ``null`` is a missing value.

    Raises:
        InvalidInputError: no rows, or a row or value that does not fit; the message names the
            row and the feature.
        TooManyRowsError: more than ``max_rows`` rows.
    """
    _check_row_count(len(rows), max_rows)
    features = schema.features
    table = np.empty((len(rows), len(features)), dtype=object)
    for index, row in enumerate(rows):
        if type(row) is dict:
            values = _values_of_object(index, row, schema)
        elif type(row) is list:
            if len(row) != len(features):
                raise InvalidInputError(
                    f"Row {index} has {len(row)} values; the model expects {len(features)} "
                    f"({', '.join(schema.names)})."
                )
            values = row
        else:
            raise InvalidInputError(
                f"Row {index} must be an array of {len(features)} values or an object keyed "
                "by feature name."
            )
        for feature, value in zip(features, values, strict=True):
            problem = check_value(feature, value)
            if problem is not None:
                raise InvalidInputError(f"Row {index}, feature {feature.name!r}: {problem}.")
        table[index] = values
    return table


def _values_of_object(index: int, row: Mapping[str, object], schema: FeatureSchema) -> list[Any]:
    values: list[Any] = []
    for feature in schema.features:
        if feature.name in row:
            values.append(row[feature.name])
        elif feature.nullable:
            values.append(None)
        else:
            raise InvalidInputError(f"Row {index} is missing feature {feature.name!r}.")
    if len(row) != sum(1 for name in schema.names if name in row):
        known = frozenset(schema.names)
        unknown = next(key for key in row if key not in known)
        raise InvalidInputError(f"Row {index} has unknown feature {unknown!r}.")
    return values


def table_from_columns(
    columns: Mapping[str, Sequence[object]], schema: FeatureSchema, *, max_rows: int
) -> NDArray[np.object_]:
    """Check one list of values per feature (V2 tensors) and stack them as :func:`table_from_rows`.

    Raises:
        InvalidInputError: a feature without a column, columns of unequal lengths, or a value
            that does not fit; the message names the input and the value's position.
        TooManyRowsError: more than ``max_rows`` rows.
    """
    missing = [name for name in schema.names if name not in columns]
    if missing:
        raise InvalidInputError(f"Input {missing[0]!r} is missing; every feature needs one.")
    lengths = {len(column) for column in columns.values()}
    if len(lengths) > 1:
        shown = ", ".join(f"{name!r} has {len(column)}" for name, column in columns.items())
        raise InvalidInputError(f"Every input must have the same number of values; {shown}.")
    n_rows = lengths.pop()
    _check_row_count(n_rows, max_rows)
    table = np.empty((n_rows, len(schema.features)), dtype=object)
    for position, feature in enumerate(schema.features):
        column = columns[feature.name]
        for index, value in enumerate(column):
            problem = check_value(feature, value)
            if problem is not None:
                raise InvalidInputError(f"Input {feature.name!r} value {index}: {problem}.")
        table[:, position] = column
    return table


def _check_row_count(n_rows: int, max_rows: int) -> None:
    if n_rows == 0:
        raise InvalidInputError("The request has no rows.")
    if n_rows > max_rows:
        raise TooManyRowsError(n_rows, max_rows)


def frame_from_table(table: NDArray[np.object_], schema: FeatureSchema) -> pd.DataFrame:
    """One DataFrame for a batch's checked rows, each column with its feature's dtype.

    float is ``float64`` (missing: NaN); int is ``int64``, or ``float64`` with NaN when the
    batch misses a value (as pandas does); bool is ``bool``, or ``object`` with NaN when the
    batch misses a value; string is pandas' ``str`` dtype (missing: NaN).
    """
    columns: dict[str, Any] = {}
    for position, feature in enumerate(schema.features):
        columns[feature.name] = _column(table[:, position], feature)
    return pd.DataFrame(columns, copy=False)


def _column(values: NDArray[np.object_], feature: Feature) -> Any:
    if feature.type == "string":
        return pd.array(values, dtype="str")
    if feature.type == "float":
        # object -> float64 turns None into NaN in one C pass.
        return values.astype(np.float64)
    missing = feature.nullable and any(value is None for value in values)
    if feature.type == "int":
        return values.astype(np.float64 if missing else np.int64)
    if missing:
        column = values.copy()
        column[[value is None for value in values]] = np.nan
        return column
    return values.astype(np.bool_)


def warm_up_table(schema: FeatureSchema) -> NDArray[np.object_]:
    """One valid row: each string feature's first category (else ""), false, 0 and 0.0."""
    row: list[object] = []
    for feature in schema.features:
        if feature.type == "string":
            row.append(feature.categories[0] if feature.categories else "")
        elif feature.type == "bool":
            row.append(False)
        elif feature.type == "int":
            row.append(0)
        else:
            row.append(0.0)
    table = np.empty((1, len(row)), dtype=object)
    table[0] = row
    return table


def table_outputs(
    model: Any, schema: FeatureSchema, outputs: Sequence[Output]
) -> dict[Output, Callable[[NDArray[Any]], Any]]:
    """The model's methods for ``outputs``, each taking a batch's table and calling the model
    on its one DataFrame."""

    def on_frame(method: Callable[[pd.DataFrame], Any]) -> Callable[[NDArray[Any]], Any]:
        def call(table: NDArray[Any]) -> Any:
            return method(frame_from_table(table, schema))

        return call

    return {output: on_frame(getattr(model, output)) for output in outputs}
