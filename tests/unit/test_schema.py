"""Tests for service.store.schema: inferring a feature schema, and reading examples and schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.compose import make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.preprocessing import OrdinalEncoder
from sklearn.preprocessing import StandardScaler

from service.store import FeatureSchemaError
from service.store.features import Feature
from service.store.features import FeatureSchema
from service.store.schema import infer_schema
from service.store.schema import read_example
from service.store.schema import read_schema

CITIES = ("oslo", "paris", "rome")
TABLE = pd.DataFrame(
    {
        "city": ["paris", "rome", "oslo", "rome"] * 5,
        "size": [1.5, 2.0, np.nan, 3.0] * 5,
        "rooms": [1, 2, 3, 4] * 5,
        "garden": [True, False] * 10,
    }
)
TARGET = [0, 1, 1, 0] * 5


def _fit(columns: ColumnTransformer, table: pd.DataFrame = TABLE) -> Any:
    return make_pipeline(columns, LogisticRegression()).fit(table, TARGET)


def _typed(
    remainder: str = "drop", flags: list[tuple[str, Any, Any]] | None = None
) -> ColumnTransformer:
    """City one-hot encoded, size imputed and scaled, rooms scaled; flags and remainder as given."""
    return ColumnTransformer(
        [
            ("city", OneHotEncoder(), ["city"]),
            ("size", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["size"]),
            ("rooms", StandardScaler(), ["rooms"]),
            *(flags or []),
        ],
        remainder=remainder,
    )


class TestFromTheModel:
    def test_encoder_categories_imputers_and_scalers(self) -> None:
        """Encoded strings get their categories, imputed numbers are nullable floats."""
        model = _fit(_typed(flags=[("garden", StandardScaler(), ["garden"])]))

        assert infer_schema(model) == FeatureSchema(
            (
                Feature("city", "string", categories=CITIES),
                Feature("size", "float", nullable=True),
                Feature("rooms", "float"),
                Feature("garden", "float"),
            )
        )

    def test_encoder_accepting_unknown_strings_lists_no_categories(self) -> None:
        """A OneHotEncoder that ignores unknown strings takes any string: no categories."""
        columns = ColumnTransformer(
            [("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="drop"
        )
        model = _fit(columns, TABLE[["city"]])

        assert infer_schema(model) == FeatureSchema((Feature("city", "string"),))

    def test_ordinal_encoder_fitted_with_missing_values_is_nullable(self) -> None:
        """An OrdinalEncoder whose categories include NaN takes missing values."""
        table = TABLE[["city"]].astype(object)
        table.loc[0, "city"] = np.nan
        encoder = OrdinalEncoder(encoded_missing_value=-1)
        model = _fit(ColumnTransformer([("city", encoder, ["city"])]), table)

        assert infer_schema(model) == FeatureSchema(
            (Feature("city", "string", nullable=True, categories=CITIES),)
        )

    def test_imputer_before_encoder_makes_a_nullable_string(self) -> None:
        """A most_frequent imputer in front of a OneHotEncoder: a nullable string column."""
        impute_then_encode = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder())
        model = _fit(ColumnTransformer([("city", impute_then_encode, ["city"])]), TABLE[["city"]])

        assert infer_schema(model) == FeatureSchema(
            (Feature("city", "string", nullable=True, categories=CITIES),)
        )

    def test_make_column_selector(self) -> None:
        """Columns picked by dtype are typed by the transformer that got them."""
        columns = ColumnTransformer(
            [
                ("strings", OneHotEncoder(), make_column_selector(dtype_include=object)),
                ("numbers", StandardScaler(), make_column_selector(dtype_include=np.number)),
            ]
        )
        table = TABLE[["city", "rooms"]].astype({"city": object})

        assert infer_schema(_fit(columns, table)) == FeatureSchema(
            (Feature("city", "string", categories=CITIES), Feature("rooms", "float"))
        )

    @pytest.mark.parametrize(
        "selection",
        [[0], np.array([True, False]), slice(0, 1), slice("city", "city")],
        ids=["indices", "mask", "slice", "name-slice"],
    )
    def test_column_selections(self, selection: Any) -> None:
        """Columns given as indices, a boolean mask or a slice are resolved to names."""
        columns = ColumnTransformer(
            [("city", OneHotEncoder(), selection), ("rooms", StandardScaler(), ["rooms"])]
        )

        schema = infer_schema(_fit(columns, TABLE[["city", "rooms"]]))

        assert schema is not None
        assert [(f.name, f.type) for f in schema.features] == [
            ("city", "string"),
            ("rooms", "float"),
        ]

    def test_plain_estimator_on_a_numeric_table_is_all_float(self) -> None:
        """A model fitted straight on a table of numbers gets an all-float schema."""
        model = LogisticRegression().fit(TABLE[["rooms"]].assign(half=0.5), TARGET)

        assert infer_schema(model) == FeatureSchema(
            (Feature("rooms", "float"), Feature("half", "float"))
        )

    def test_model_fitted_on_numpy_has_no_schema(self) -> None:
        """Without feature_names_in_ there is no schema: the model is served all-numeric."""
        model = LogisticRegression().fit(TABLE[["rooms"]].to_numpy(), TARGET)

        assert infer_schema(model) is None


class TestRefusals:
    @pytest.mark.parametrize(
        ("remainder", "flags"),
        [
            ("drop", [("garden", "passthrough", ["garden"])]),
            ("passthrough", None),
            ("drop", None),
        ],
        ids=["passthrough", "remainder-passthrough", "remainder-drop"],
    )
    def test_untyped_column_is_named(self, remainder: str, flags: Any) -> None:
        """A column passed on as it is, or dropped, cannot be typed without help."""
        model = _fit(_typed(remainder, flags))

        with pytest.raises(FeatureSchemaError, match=r"type of column 'garden'.*--example"):
            infer_schema(model, name="homes")

    def test_every_untyped_column_is_named(self) -> None:
        """One refusal names all the columns that nothing types, in the model's order."""
        columns = ColumnTransformer([("rooms", StandardScaler(), ["rooms"])], remainder="drop")
        model = _fit(columns, TABLE.drop(columns="size"))

        with pytest.raises(FeatureSchemaError, match="type of columns 'city', 'garden':"):
            infer_schema(model)

    def test_example_missing_a_column(self) -> None:
        """An example table without one of the model's columns is refused, naming it."""
        model = _fit(_typed("passthrough"))

        with pytest.raises(FeatureSchemaError, match="no column 'garden'"):
            infer_schema(model, example=TABLE.drop(columns="garden"))

    def test_example_for_a_model_without_names(self) -> None:
        """An example cannot be matched to a model fitted on numpy arrays."""
        model = LogisticRegression().fit(TABLE[["rooms"]].to_numpy(), TARGET)

        with pytest.raises(FeatureSchemaError, match="without column names"):
            infer_schema(model, example=TABLE)

    def test_declared_schema_with_other_names(self) -> None:
        """A declared schema must name the model's columns, in order."""
        model = _fit(_typed("passthrough"))
        declared = FeatureSchema((Feature("town", "string"),))

        with pytest.raises(FeatureSchemaError, match="names the columns town but the model"):
            infer_schema(model, declared=declared)


class TestWithExample:
    @pytest.mark.parametrize("remainder", ["passthrough", "drop"])
    def test_example_types_what_the_model_cannot(self, remainder: str) -> None:
        """The example types a passed-through or dropped column; its NaNs decide nullable."""
        model = _fit(_typed(remainder))

        assert infer_schema(model, example=TABLE) == FeatureSchema(
            (
                Feature("city", "string", categories=CITIES),
                Feature("size", "float", nullable=True),
                Feature("rooms", "int"),
                Feature("garden", "bool"),
            )
        )

    def test_example_without_missing_values_is_not_nullable(self) -> None:
        """An imputed column that the example never leaves empty is not nullable."""
        model = _fit(_typed("passthrough"))

        schema = infer_schema(model, example=TABLE.fillna({"size": 1.0}))

        assert schema is not None
        assert schema.features[1] == Feature("size", "float")

    def test_declared_schema_wins(self) -> None:
        """A declared schema is taken as it is, over the model and the example."""
        model = _fit(_typed("passthrough"))
        declared = FeatureSchema(
            (
                Feature("city", "string", nullable=True),
                Feature("size", "float"),
                Feature("rooms", "float"),
                Feature("garden", "int"),
            )
        )

        assert infer_schema(model, example=TABLE, declared=declared) is declared

    def test_csv_example(self, tmp_path: Path) -> None:
        """A CSV example: integers with a blank are a nullable int; extra columns are ignored."""
        path = tmp_path / "homes.csv"
        path.write_text(
            "city,size,rooms,garden,price\nparis,1.5,2,true,100\nrome,,,false,200\noslo,3.0,1,true,50\n"
        )
        model = _fit(_typed("passthrough"))

        assert infer_schema(model, example=read_example(path)) == FeatureSchema(
            (
                Feature("city", "string", categories=CITIES),
                Feature("size", "float", nullable=True),
                Feature("rooms", "int", nullable=True),
                Feature("garden", "bool"),
            )
        )

    def test_json_example(self, tmp_path: Path) -> None:
        """A JSON example: 3 beside null is a nullable int, while 3.0 is a float."""
        rows = [
            {"city": "paris", "size": 3.0, "rooms": 3, "garden": True},
            {"city": None, "size": 2.5, "rooms": None, "garden": False},
        ]
        path = tmp_path / "homes.json"
        path.write_text(json.dumps(rows))
        model = _fit(_typed("passthrough"))

        assert infer_schema(model, example=read_example(path)) == FeatureSchema(
            (
                Feature("city", "string", nullable=True, categories=CITIES),
                Feature("size", "float"),
                Feature("rooms", "int", nullable=True),
                Feature("garden", "bool"),
            )
        )


class TestReading:
    @pytest.mark.parametrize(
        ("file_name", "content", "message"),
        [
            ("homes.txt", "city\nparis\n", "must be a .csv or a .json file"),
            ("homes.json", '{"city": "paris"}', "list of row objects"),
            ("homes.json", "[1, 2", "Cannot read the example"),
            ("homes.json", "[]", "holds no rows"),
            ("homes.csv", "city\n", "holds no rows"),
        ],
        ids=["suffix", "not-rows", "not-json", "empty-json", "empty-csv"],
    )
    def test_bad_example_refused(
        self, tmp_path: Path, file_name: str, content: str, message: str
    ) -> None:
        """An example that is not a CSV table or a JSON list of rows is refused, saying why."""
        path = tmp_path / file_name
        path.write_text(content)

        with pytest.raises(FeatureSchemaError, match=message):
            read_example(path)

    def test_missing_example_refused(self, tmp_path: Path) -> None:
        """A path that does not exist is refused, naming it."""
        with pytest.raises(FeatureSchemaError, match=r"Cannot read the example .*absent\.csv"):
            read_example(tmp_path / "absent.csv")

    def test_schema_file(self, tmp_path: Path) -> None:
        """A schema file is a JSON list of feature objects, as a manifest holds them."""
        schema = FeatureSchema(
            (Feature("city", "string", categories=CITIES), Feature("rooms", "int", nullable=True))
        )
        path = tmp_path / "schema.json"
        path.write_text(json.dumps(schema.to_json()))

        assert read_schema(path) == schema

    @pytest.mark.parametrize(
        "content",
        ['{"name": "city"}', '[{"name": "city", "type": "text"}]', "[", "[]"],
        ids=["not-a-list", "bad-type", "not-json", "empty"],
    )
    def test_bad_schema_file_refused(self, tmp_path: Path, content: str) -> None:
        """A schema file that is not a list of valid features is refused, naming the file."""
        path = tmp_path / "schema.json"
        path.write_text(content)

        with pytest.raises(FeatureSchemaError, match=r"Cannot read the schema .*schema\.json"):
            read_schema(path)
