"""Input parsing: body forms to rows, rows to a validated float64 matrix."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import InvalidInputError
from service.errors import TooManyRowsError
from service.inputs import describe_value
from service.inputs import matrix_from_rows
from service.inputs import rows_from_body

NAMES = ("a", "b", "c")


def matrix(rows: list[object], *, names: tuple[str, ...] | None = NAMES, max_rows: int = 100):
    return matrix_from_rows(rows, n_features=3, feature_names=names, max_rows=max_rows)


class TestRowsFromBody:
    @pytest.mark.parametrize(
        "body",
        [
            {"features": [[1, 2, 3], [4, 5, 6]]},
            {"instances": [[1, 2, 3], [4, 5, 6]]},
            [[1, 2, 3], [4, 5, 6]],
        ],
    )
    def test_row_forms(self, body: object) -> None:
        """features, instances and a bare array all give the same rows."""
        assert [[1, 2, 3], [4, 5, 6]] == rows_from_body(body)

    def test_single_row_is_wrapped(self) -> None:
        """A flat array of numbers is one row."""
        assert [[1, 2, 3]] == rows_from_body({"features": [1, 2, 3]})

    def test_object_rows_pass_through(self) -> None:
        """Rows given as objects are returned as they are."""
        assert [{"a": 1}] == rows_from_body({"instances": [{"a": 1}]})

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"rows": [[1]]}, '"features" or "instances"'),
            ({"features": [[1]], "instances": [[1]]}, "one key"),
            ({"features": 3}, '"features" must be an array'),
            ({"features": []}, "no rows"),
            ([], "no rows"),
            ("text", "must be an object"),
            (None, "must be an object"),
        ],
    )
    def test_bad_forms(self, body: object, message: str) -> None:
        """Bodies of no accepted form are refused with a message saying what is expected."""
        with pytest.raises(InvalidInputError, match=message):
            rows_from_body(body)


class TestMatrixFromRows:
    def test_numbers_become_float64_matrix(self) -> None:
        """Ints and floats stack into a C-contiguous float64 matrix."""
        result = matrix([[1, 2.5, 3], [4, 5, 6]])

        assert np.float64 == result.dtype
        assert result.flags.c_contiguous
        assert [[1.0, 2.5, 3.0], [4.0, 5.0, 6.0]] == result.tolist()

    def test_object_rows_are_ordered_by_feature_names(self) -> None:
        """Object rows are laid out in the manifest's feature order, whatever the key order."""
        assert [[1.0, 2.0, 3.0]] == matrix([{"c": 3, "a": 1, "b": 2}]).tolist()

    @pytest.mark.parametrize(
        ("rows", "message"),
        [
            ([], "no rows"),
            ([[1, 2]], "Row 0 has 2 features; the model expects 3"),
            ([[1, 2, 3], [1, 2]], "Row 1 has 2 features"),
            ([[1, 2, 3], 4], "Row 1 must be an array"),
            ([[1, "x", 3]], r"Row 0, feature 1 \('b'\): 'x' is not a number"),
            ([[1, 2, None]], "null is not a number"),
            ([[True, 2, 3]], "true is not a number"),
            ([[1, [2], 3]], "an array is not a number"),
            ([[1, {"x": 2}, 3]], "an object is not a number"),
            ([[1, 2, 1e309]], r"Row 0, feature 2 \('c'\): values must be finite"),
            ([{"a": 1, "b": 2, "z": 3}], "Row 0 has unknown feature 'z'"),
            ([{"a": 1, "b": 2}], "Row 0 is missing feature 'c'"),
            ([{"a": 1, "b": 2, "c": 3}, [1, 2, 3]], "Row 1 must be an object"),
        ],
    )
    def test_invalid_rows_name_the_problem(self, rows: list[object], message: str) -> None:
        """Each kind of bad row is refused with a message naming the row and field."""
        with pytest.raises(InvalidInputError, match=message):
            matrix(rows)

    def test_object_rows_need_feature_names(self) -> None:
        """A model without feature names refuses object rows."""
        with pytest.raises(InvalidInputError, match="no feature names"):
            matrix([{"a": 1, "b": 2, "c": 3}], names=None)

    def test_feature_position_named_without_names(self) -> None:
        """Without feature names, errors name the feature by position."""
        with pytest.raises(InvalidInputError, match="Row 0, feature 2: 'x' is not a number"):
            matrix([[1, 2, "x"]], names=None)

    def test_too_many_rows(self) -> None:
        """More rows than allowed raises TooManyRowsError naming both numbers."""
        with pytest.raises(TooManyRowsError, match="3 rows; at most 2"):
            matrix([[1, 2, 3]] * 3, max_rows=2)

    def test_huge_integer_refused(self) -> None:
        """An integer beyond float range is refused, not crashed on."""
        with pytest.raises(InvalidInputError):
            matrix([[1, 2, 10**400]])


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        ("1.4", "'1.4'"),
        ("x" * 21, "'" + "x" * 17 + "...'"),
        (7, "7"),
        (1.5, "1.5"),
        (float("nan"), "nan"),
        (float("-inf"), "-inf"),
        ([1], "an array"),
        ({"a": 1}, "an object"),
    ],
)
def test_describe_value(value: object, shown: str) -> None:
    """Error messages show a client's value short and spelled as JSON spells it."""
    assert shown == describe_value(value)
