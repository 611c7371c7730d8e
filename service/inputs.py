"""Turning decoded JSON into a model's input matrix, with errors that name the bad row or field.

Shared by every protocol: the Flask-compatible routes hand over whole bodies
(:func:`rows_from_body`), the V1/V2 routes hand over already located row lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from service.errors import InvalidInputError
from service.errors import TooManyRowsError

__all__ = ["describe_value", "matrix_from_rows", "rows_from_body"]

# bool is a subclass of int, so type() and not isinstance() keeps true/false out.
_NUMBER_TYPES = frozenset({int, float})


def rows_from_body(body: object) -> list[Any]:
    """Find the rows in a ``/predict`` body of any accepted form.

    Accepted: ``{"features": rows | row}``, ``{"instances": rows | row}``, a bare array of rows,
    where a row is an array of numbers or an object keyed by feature name.

    Returns:
        The rows; a single row comes back as a list of one row, as the tutorial service wraps it.

    Raises:
        InvalidInputError: the body has none of those forms.
    """
    if isinstance(body, dict):
        keys = [key for key in ("features", "instances") if key in body]
        if len(keys) != 1:
            raise InvalidInputError(
                'The body must be an object with one key, "features" or "instances", '
                "or an array of rows."
            )
        data = body[keys[0]]
        where = f'"{keys[0]}"'
    elif isinstance(body, list):
        data = body
        where = "the body"
    else:
        raise InvalidInputError(
            'The body must be an object with "features" or "instances", or an array of rows.'
        )
    if not isinstance(data, list):
        raise InvalidInputError(f"{where} must be an array of rows or one row.")
    if not data:
        raise InvalidInputError(f"{where} has no rows.")
    first = data[0]
    if isinstance(first, list | dict):
        return data
    # A flat array of scalars is one row (the tutorial's `{"features": [f1, ..., fn]}`).
    return [data]


def matrix_from_rows(
    rows: Sequence[object],
    *,
    n_features: int,
    feature_names: Sequence[str] | None,
    max_rows: int,
) -> NDArray[np.float64]:
    """Validate rows and stack them into a C-contiguous ``(n_rows, n_features)`` float64 matrix.

    Raises:
        InvalidInputError: empty, ragged, non-numeric or non-finite data, or unknown features.
        TooManyRowsError: more than ``max_rows`` rows.
    """
    if not rows:
        raise InvalidInputError("The request has no rows.")
    if len(rows) > max_rows:
        raise TooManyRowsError(len(rows), max_rows)
    if isinstance(rows[0], dict):
        rows = _rows_from_objects(rows, feature_names)
    for index, row in enumerate(rows):
        if type(row) is not list:
            raise InvalidInputError(f"Row {index} must be an array of {n_features} numbers.")
        if len(row) != n_features:
            raise InvalidInputError(
                f"Row {index} has {len(row)} features; the model expects {n_features}."
            )
        # One C-level pass over the row's types; only a bad row pays for the slow search.
        if not _NUMBER_TYPES.issuperset(map(type, row)):
            _raise_non_numeric(index, row, feature_names)
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError:
        raise InvalidInputError("A value is too large to be a 64-bit float.") from None
    if not np.isfinite(matrix).all():
        row_index, column = (int(i) for i in np.argwhere(~np.isfinite(matrix))[0])
        raise InvalidInputError(
            f"Row {row_index}, {_feature(column, feature_names)}: values must be finite numbers."
        )
    return matrix


def _rows_from_objects(
    rows: Sequence[object], feature_names: Sequence[str] | None
) -> list[list[Any]]:
    if feature_names is None:
        raise InvalidInputError(
            "This model has no feature names; send each row as an array of numbers."
        )
    known = frozenset(feature_names)
    result: list[list[Any]] = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise InvalidInputError(
                f"Row {index} must be an object keyed by feature name, like the rows before it."
            )
        unknown = sorted(key for key in row if key not in known)
        if unknown:
            raise InvalidInputError(f"Row {index} has unknown feature {unknown[0]!r}.")
        missing = [name for name in feature_names if name not in row]
        if missing:
            raise InvalidInputError(f"Row {index} is missing feature {missing[0]!r}.")
        result.append([row[name] for name in feature_names])
    return result


def _raise_non_numeric(index: int, row: list[Any], feature_names: Sequence[str] | None) -> None:
    for column, value in enumerate(row):
        if type(value) not in _NUMBER_TYPES:
            shown = describe_value(value)
            raise InvalidInputError(
                f"Row {index}, {_feature(column, feature_names)}: {shown} is not a number."
            )


def _feature(column: int, feature_names: Sequence[str] | None) -> str:
    if feature_names is not None:
        return f"feature {column} ({feature_names[column]!r})"
    return f"feature {column}"


def describe_value(value: object) -> str:
    """A client's value as an error message shows it: short, and spelled as JSON spells it.

    ``null``, ``true`` and ``false`` for those; strings quoted and cut to 20 characters; numbers
    as Python prints them (``nan`` and ``inf`` too); ``an array`` or ``an object`` for the rest.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 20 else value[:17] + "...")
    if isinstance(value, int | float):
        return repr(value)
    return "an array" if isinstance(value, list) else "an object"
