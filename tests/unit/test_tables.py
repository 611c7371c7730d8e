"""Table models' rows: checking against the feature schema, and the DataFrame of a batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from service.errors import InvalidInputError
from service.errors import TooManyRowsError
from service.store import ModelStore
from service.store.features import Feature
from service.store.features import FeatureSchema
from service.tables import check_value
from service.tables import frame_from_table
from service.tables import table_from_columns
from service.tables import table_from_rows
from service.tables import table_outputs
from service.tables import warm_up_table
from tests.loans import ROWS

SCHEMA = FeatureSchema(
    (
        Feature("city", "string", nullable=True, categories=("lyon", "paris")),
        Feature("rooms", "int", nullable=True),
        Feature("garden", "bool"),
        Feature("area", "float"),
    )
)


@pytest.fixture(name="loans", scope="module")
def _loans(demo_store_template: Path) -> tuple[Any, FeatureSchema]:
    """The loans demo model and its feature schema."""
    artifact = ModelStore(demo_store_template).load("loans", 1)
    assert artifact.manifest.features is not None
    return artifact.model, artifact.manifest.features


def table(rows: list[Any]) -> np.ndarray[Any, Any]:
    return table_from_rows(rows, SCHEMA, max_rows=100)


@pytest.mark.parametrize(
    ("feature", "value"),
    [
        (Feature("x", "float"), 1.5),
        (Feature("x", "float"), 3),
        (Feature("x", "int"), -(2**63)),
        (Feature("x", "bool"), False),
        (Feature("x", "string"), ""),
        (Feature("x", "string", categories=("a",)), "unknown to the encoder"),
        (Feature("x", "int", nullable=True), None),
    ],
)
def test_accepted_values(feature: Feature, value: object) -> None:
    """Each type takes its JSON values, and a nullable feature takes null."""
    assert check_value(feature, value) is None


@pytest.mark.parametrize(
    ("feature", "value", "problem"),
    [
        (Feature("x", "float"), "1.5", "'1.5' is not a number"),
        (Feature("x", "float"), True, "true is not a number"),
        (Feature("x", "float"), float("nan"), "nan is not a finite number"),
        (Feature("x", "float"), 2**64, "the number is out of range"),
        (Feature("x", "int"), 3.0, "3.0 is not an integer"),
        (Feature("x", "int"), False, "false is not an integer"),
        (Feature("x", "int"), 2**63, "the integer is out of range"),
        (Feature("x", "bool"), 1, "1 is not true or false"),
        (Feature("x", "bool"), "true", "'true' is not true or false"),
        (Feature("x", "string"), 7, "7 is not a string"),
        (Feature("x", "string"), ["a"], "an array is not a string"),
        (Feature("x", "string"), {"a": 1}, "an object is not a string"),
        (Feature("x", "string"), None, "null is not allowed (the feature is not nullable)"),
    ],
)
def test_refused_values(feature: Feature, value: object, problem: str) -> None:
    """A value of the wrong type, out of range or missing where not nullable says why."""
    assert check_value(feature, value) == problem


def test_rows_as_objects_and_arrays_make_the_same_table() -> None:
    """An object row and an array row in feature order give the same values."""
    objects = table([{"city": "lyon", "rooms": 3, "garden": True, "area": 80.5}])
    arrays = table([["lyon", 3, True, 80.5]])

    assert objects.tolist() == arrays.tolist() == [["lyon", 3, True, 80.5]]


def test_absent_nullable_field_is_missing() -> None:
    """An object row may leave out a nullable feature; null says the same."""
    rows = [
        {"garden": False, "area": 1.0},
        {"city": None, "rooms": None, "garden": False, "area": 1},
    ]

    assert table(rows).tolist() == [[None, None, False, 1.0], [None, None, False, 1]]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "The request has no rows."),
        ([{"city": "lyon", "garden": True}], "Row 0 is missing feature 'area'."),
        (
            [{"garden": True, "area": 1.0, "pool": True}],
            "Row 0 has unknown feature 'pool'.",
        ),
        (
            [["lyon", 3, True]],
            "Row 0 has 3 values; the model expects 4 (city, rooms, garden, area).",
        ),
        (
            [["lyon", 3, True, 1.0], "paris"],
            "Row 1 must be an array of 4 values or an object keyed by feature name.",
        ),
        ([["lyon", 3, "yes", 1.0]], "Row 0, feature 'garden': 'yes' is not true or false."),
        (
            [{"garden": True, "area": None}],
            "Row 0, feature 'area': null is not allowed (the feature is not nullable).",
        ),
        ([[["lyon"], 3, True, 1.0]], "Row 0, feature 'city': an array is not a string."),
    ],
)
def test_bad_rows_are_named(rows: list[Any], message: str) -> None:
    """A request that does not fit the schema fails with the row and the feature."""
    with pytest.raises(InvalidInputError) as raised:
        table(rows)

    assert str(raised.value) == message


def test_too_many_rows() -> None:
    """More rows than a request may carry is TooManyRowsError."""
    with pytest.raises(TooManyRowsError):
        table_from_rows([["lyon", 3, True, 1.0]] * 3, SCHEMA, max_rows=2)


def test_columns_make_the_same_table_as_rows() -> None:
    """One list per feature, in any order, gives the table of the rows they transpose."""
    columns: dict[str, list[Any]] = {
        "area": [1.0, 2.5],
        "garden": [True, False],
        "rooms": [None, 4],
        "city": ["paris", None],
    }

    assert (
        table_from_columns(columns, SCHEMA, max_rows=10).tolist()
        == table([["paris", None, True, 1.0], [None, 4, False, 2.5]]).tolist()
    )


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"city": ["a"], "rooms": [1], "garden": [True]},
            "Input 'area' is missing; every feature needs one.",
        ),
        (
            {"city": ["a"], "rooms": [1], "garden": [True], "area": [1.0, 2.0]},
            "Every input must have the same number of values; 'city' has 1, 'rooms' has 1, "
            "'garden' has 1, 'area' has 2.",
        ),
        (
            {"city": ["a"], "rooms": [1.5], "garden": [True], "area": [1.0]},
            "Input 'rooms' value 0: 1.5 is not an integer.",
        ),
        ({"city": [], "rooms": [], "garden": [], "area": []}, "The request has no rows."),
    ],
)
def test_bad_columns_are_named(columns: dict[str, list[Any]], message: str) -> None:
    """Columns that do not fit the schema fail with the input and the value's position."""
    with pytest.raises(InvalidInputError) as raised:
        table_from_columns(columns, SCHEMA, max_rows=10)

    assert str(raised.value) == message


def test_frame_dtypes_of_a_complete_batch() -> None:
    """With no missing value, each column has its type's own dtype."""
    frame = frame_from_table(table([["lyon", 3, True, 80.0], ["paris", 2, False, 1]]), SCHEMA)

    assert [str(dtype) for dtype in frame.dtypes] == ["str", "int64", "bool", "float64"]
    assert list(frame.columns) == ["city", "rooms", "garden", "area"]


def test_frame_dtypes_with_missing_values() -> None:
    """Missing values are NaN; an int column with one becomes float64, as pandas makes it."""
    schema = FeatureSchema((*SCHEMA.features[:2], Feature("garden", "bool", nullable=True)))
    rows = table_from_rows([["lyon", None, None], ["paris", 2, True]], schema, max_rows=10)

    frame = frame_from_table(rows, schema)

    assert [str(dtype) for dtype in frame.dtypes] == ["str", "float64", "object"]
    assert frame.isna().to_numpy().tolist() == [[False, True, True], [False, False, False]]


def test_column_entirely_missing_keeps_its_dtype() -> None:
    """A string column missing in every row of the batch is still a str column."""
    frame = frame_from_table(table([[None, None, True, 1.0]]), SCHEMA)

    assert [str(dtype) for dtype in frame.dtypes] == ["str", "float64", "bool", "float64"]


def test_frame_matches_pandas_on_the_same_rows(loans: tuple[Any, FeatureSchema]) -> None:
    """The model answers the batch's frame exactly as it answers pd.DataFrame(rows)."""
    model, schema = loans
    frame = frame_from_table(table_from_rows(ROWS, schema, max_rows=10), schema)

    expected = model.predict_proba(pd.DataFrame(ROWS))

    assert model.predict_proba(frame).tolist() == expected.tolist()


def test_table_outputs_answer_a_concatenated_batch(loans: tuple[Any, FeatureSchema]) -> None:
    """Tables of several requests, concatenated as the batcher does, answer row for row."""
    model, schema = loans
    outputs = table_outputs(model, schema, ("predict",))
    parts = [table_from_rows([row], schema, max_rows=10) for row in ROWS]

    batched = outputs["predict"](np.concatenate(parts))

    assert batched.tolist() == model.predict(pd.DataFrame(ROWS)).tolist()


def test_warm_up_row_is_valid_for_the_model(loans: tuple[Any, FeatureSchema]) -> None:
    """The warm-up row (first categories, false, zeros) is one the model answers."""
    model, schema = loans

    row = warm_up_table(schema)

    assert row.tolist() == [["business", "retired", False, 0, 0.0, 0.0, 0]]
    assert len(table_outputs(model, schema, ("predict",))["predict"](row)) == 1
