"""Tests for service.store.manifest: the manifest's JSON form, validation and describe()."""

from __future__ import annotations

import json
import platform
import re
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_diabetes
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier

from service.store import ArtifactError
from service.store import Manifest
from service.store import ManifestError
from service.store.features import Feature
from service.store.features import FeatureSchema
from service.store.manifest import utc_now

SHA = "ab" * 32
SOURCE = "store/iris/3/model.json"
MANIFEST_FIELDS = [
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
    "format",
]


@pytest.fixture(name="manifest")
def _manifest() -> Manifest:
    return Manifest(
        name="iris",
        version=3,
        artifact="model.joblib",
        sha256=SHA,
        framework="scikit-learn",
        framework_version="1.9.1",
        python_version="3.11.7",
        created_at="2026-11-21T22:30:00Z",
        task="classification",
        n_features=4,
        feature_names=("sepal_length", "sepal_width", "petal_length", "petal_width"),
        classes=(0, 1, 2),
        outputs=("predict", "predict_proba"),
    )


@pytest.fixture(name="document")
def _document(manifest: Manifest) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(manifest.to_json())
    return document


@pytest.fixture(name="classifier", scope="module")
def _classifier() -> Any:
    features, target = load_iris(return_X_y=True)
    return DecisionTreeClassifier(random_state=0).fit(features, target)


@pytest.fixture(name="regressor", scope="module")
def _regressor() -> Any:
    features, target = load_diabetes(return_X_y=True)
    return LinearRegression().fit(features, target)


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document).encode()


class TestJson:
    def test_round_trip(self, manifest: Manifest) -> None:
        """from_json(to_json()) gives back an equal manifest."""
        assert manifest == Manifest.from_json(manifest.to_json(), source=SOURCE)

    def test_round_trip_regressor_without_names(self, manifest: Manifest) -> None:
        """A manifest with null feature_names and classes survives the round trip."""
        regressor = Manifest(
            **{
                **{field: getattr(manifest, field) for field in MANIFEST_FIELDS},
                "task": "regression",
                "feature_names": None,
                "classes": None,
                "outputs": ("predict",),
            }
        )

        assert regressor == Manifest.from_json(regressor.to_json(), source=SOURCE)

    def test_fields_are_the_spec_fields(self, document: dict[str, Any]) -> None:
        """to_json writes exactly the README's manifest fields, in that order."""
        assert list(document) == MANIFEST_FIELDS

    def test_format_absent_means_joblib(self, document: dict[str, Any]) -> None:
        """A manifest without format (as the first release wrote them) is a joblib one."""
        del document["format"]

        assert "joblib" == Manifest.from_json(_encode(document), source=SOURCE).format

    def test_unknown_format_refused(self, document: dict[str, Any]) -> None:
        """A format other than skops or joblib is a manifest error naming the field."""
        document["format"] = "pickle"

        with pytest.raises(ManifestError, match="field 'format' must be one of skops, joblib"):
            Manifest.from_json(_encode(document), source=SOURCE)

    def test_tuples_become_lists(self, document: dict[str, Any]) -> None:
        """Tuple fields are written as JSON lists."""
        assert document["outputs"] == ["predict", "predict_proba"]
        assert document["classes"] == [0, 1, 2]

    def test_json_is_indented(self, manifest: Manifest) -> None:
        """The JSON is indented, one field per line, so manifests read and diff well."""
        assert manifest.to_json().startswith(b'{\n  "name": "iris",\n')

    def test_unknown_fields_are_ignored(self, document: dict[str, Any], manifest: Manifest) -> None:
        """A field this version does not know is ignored, not an error."""
        document["trained_by"] = "someone newer"

        assert manifest == Manifest.from_json(_encode(document), source=SOURCE)


IRIS_SCHEMA = FeatureSchema(
    (
        Feature("sepal_length", "float"),
        Feature("sepal_width", "float", nullable=True),
        Feature("petal_length", "int"),
        Feature("petal_width", "string", categories=("narrow", "wide")),
    )
)


class TestFeatures:
    def test_round_trip(self, manifest: Manifest) -> None:
        """A manifest with a feature schema survives the JSON round trip."""
        typed = replace(manifest, features=IRIS_SCHEMA)

        assert typed == Manifest.from_json(typed.to_json(), source=SOURCE)

    def test_written_last_with_categories_only_when_known(self, manifest: Manifest) -> None:
        """features follows the other fields; categories appear only on the column that has them."""
        document = json.loads(replace(manifest, features=IRIS_SCHEMA).to_json())

        assert list(document) == [*MANIFEST_FIELDS, "features"]
        assert document["features"][:2] == [
            {"name": "sepal_length", "type": "float", "nullable": False},
            {"name": "sepal_width", "type": "float", "nullable": True},
        ]
        assert document["features"][3]["categories"] == ["narrow", "wide"]

    def test_absent_means_all_numeric(self, document: dict[str, Any]) -> None:
        """A manifest without features (all of today's) reads as None and writes none."""
        manifest = Manifest.from_json(_encode(document), source=SOURCE)

        assert manifest.features is None
        assert "features" not in json.loads(manifest.to_json())

    @pytest.mark.parametrize(
        ("features", "message"),
        [
            ({"name": "x"}, "the features must be a list"),
            ([], "at least one feature"),
            ([{"name": "a", "type": "decimal"}], "type must be one of float, int, bool, string"),
            ([{"name": "a", "type": "int", "categories": ["x"]}], "only string features"),
            ([{"name": "a", "type": "int", "unit": "cm"}], "unknown key 'unit'"),
            ([{"name": "a", "type": "int"}] * 4, "appears twice"),
            ([{"name": "a", "type": "int"}], "has 1 features but n_features is 4"),
            (
                [{"name": name, "type": "float"} for name in ("a", "b", "c", "d")],
                "must name the same columns, in order, as feature_names",
            ),
        ],
        ids=[
            "not-a-list",
            "empty",
            "type",
            "categories-on-int",
            "unknown-key",
            "duplicate",
            "count",
            "names",
        ],
    )
    def test_bad_features_refused(
        self, document: dict[str, Any], features: object, message: str
    ) -> None:
        """Bad features are a manifest error naming the field and what is wrong."""
        document["features"] = features

        with pytest.raises(ManifestError, match=rf"field 'features'.*{re.escape(message)}"):
            Manifest.from_json(_encode(document), source=SOURCE)

    def test_describe_takes_names_from_the_schema(self, classifier: Any) -> None:
        """describe() records the schema and, without explicit names, its column names."""
        manifest = Manifest.describe(
            classifier, name="iris", version=1, sha256=SHA, features=IRIS_SCHEMA
        )

        assert (manifest.features, manifest.feature_names) == (IRIS_SCHEMA, IRIS_SCHEMA.names)


class TestFromJsonRejects:
    @pytest.mark.parametrize("field", [field for field in MANIFEST_FIELDS if field != "format"])
    def test_missing_field(self, document: dict[str, Any], field: str) -> None:
        """A manifest without one of the manifest's fields is refused, naming the field."""
        del document[field]

        with pytest.raises(ManifestError, match=f"field '{field}' is missing") as info:
            Manifest.from_json(_encode(document), source=SOURCE)
        assert SOURCE in str(info.value)

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("name", 7),
            ("name", ""),
            ("name", "../etc"),
            ("name", ".hidden"),
            ("version", 0),
            ("version", "3"),
            ("version", True),
            ("version", 3.0),
            ("artifact", "../model.joblib"),
            ("artifact", ".."),
            ("artifact", None),
            ("sha256", "ab" * 31),
            ("sha256", "AB" * 32),
            ("sha256", "zz" * 32),
            ("framework", "pytorch"),
            ("framework_version", ""),
            ("framework_version", 1.9),
            ("python_version", None),
            ("created_at", "yesterday"),
            ("created_at", "2026-11-21T22:30:00+01:00"),
            ("created_at", "2026-13-21T22:30:00Z"),
            ("task", "clustering"),
            ("n_features", 0),
            ("n_features", 4.0),
            ("n_features", "4"),
            ("feature_names", ["a", "b", "c"]),
            ("feature_names", [1, 2, 3, 4]),
            ("feature_names", ["a", "b", "a", "d"]),
            ("feature_names", "abcd"),
            ("classes", []),
            ("classes", [[0], [1]]),
            ("classes", [None]),
            ("classes", "setosa"),
            ("outputs", ["predict_proba"]),
            ("outputs", ["predict", "predict_proba", "transform"]),
            ("outputs", "predict"),
            ("outputs", []),
        ],
    )
    def test_bad_field(self, document: dict[str, Any], field: str, value: object) -> None:
        """A field of the wrong type or value is refused with a message naming it and the file."""
        document[field] = value

        with pytest.raises(ManifestError, match=f"field '{field}'") as info:
            Manifest.from_json(_encode(document), source=SOURCE)
        assert SOURCE in str(info.value)

    def test_classes_on_a_regressor(self, document: dict[str, Any]) -> None:
        """A regression manifest must not list classes."""
        document["task"] = "regression"

        with pytest.raises(ManifestError, match="field 'classes' must be null for a regression"):
            Manifest.from_json(_encode(document), source=SOURCE)

    def test_not_json(self) -> None:
        """Bytes that are not JSON are refused, naming the file."""
        with pytest.raises(
            ManifestError, match=f"^Manifest {re.escape(SOURCE)} is not valid JSON: "
        ):
            Manifest.from_json(b"{not json", source=SOURCE)

    def test_not_utf8(self) -> None:
        """Bytes that are not UTF-8 text are refused as not JSON."""
        with pytest.raises(ManifestError, match="is not valid JSON"):
            Manifest.from_json(b"\xff\xfe{}", source=SOURCE)

    def test_not_an_object(self) -> None:
        """A JSON value other than an object is refused."""
        with pytest.raises(ManifestError, match="must be a JSON object, got list"):
            Manifest.from_json(b"[]", source=SOURCE)

    def test_message_names_model_and_version(self, document: dict[str, Any]) -> None:
        """The error is one line starting with the model's name and version when they parse."""
        document["sha256"] = "nope"

        with pytest.raises(ManifestError) as info:
            Manifest.from_json(_encode(document), source=SOURCE)
        assert str(info.value).startswith("Model 'iris' version 3: manifest ")
        assert "\n" not in str(info.value)


class TestConstructor:
    def test_invalid_manifest_cannot_be_built(self, manifest: Manifest) -> None:
        """Building a Manifest directly validates it too."""
        fields = {field: getattr(manifest, field) for field in MANIFEST_FIELDS}

        with pytest.raises(ManifestError, match="field 'n_features'"):
            Manifest(**{**fields, "n_features": -1})


class TestDescribe:
    def test_classifier(self, classifier: Any) -> None:
        """A classifier is described with its classes and both outputs."""
        manifest = Manifest.describe(classifier, name="iris", version=1, sha256=SHA)

        assert manifest.task == "classification"
        assert manifest.classes == (0, 1, 2)
        assert manifest.outputs == ("predict", "predict_proba")
        assert manifest.n_features == 4
        assert manifest.feature_names is None

    def test_classes_are_plain_python(self, classifier: Any) -> None:
        """Class labels are plain Python scalars, not numpy ones."""
        manifest = Manifest.describe(classifier, name="iris", version=1, sha256=SHA)

        assert manifest.classes is not None
        assert [int, int, int] == [type(label) for label in manifest.classes]

    def test_string_classes(self) -> None:
        """String class labels are kept as strings."""
        features, target = load_iris(return_X_y=True)
        labels = np.array(["setosa", "versicolor", "virginica"])[target]
        model = DecisionTreeClassifier(random_state=0, max_depth=1).fit(features, labels)

        manifest = Manifest.describe(model, name="iris", version=1, sha256=SHA)

        assert manifest.classes == ("setosa", "versicolor", "virginica")
        assert [str, str, str] == [type(label) for label in manifest.classes]

    def test_regressor(self, regressor: Any) -> None:
        """A regressor is described without classes and without predict_proba."""
        manifest = Manifest.describe(regressor, name="diabetes", version=2, sha256=SHA)

        assert manifest.task == "regression"
        assert manifest.classes is None
        assert manifest.outputs == ("predict",)
        assert manifest.n_features == 10

    def test_environment_fields(self, regressor: Any) -> None:
        """The framework fields record the running scikit-learn and Python."""
        manifest = Manifest.describe(regressor, name="diabetes", version=2, sha256=SHA)

        assert ("scikit-learn", sklearn.__version__, platform.python_version()) == (
            manifest.framework,
            manifest.framework_version,
            manifest.python_version,
        )
        assert (manifest.artifact, manifest.format) == ("model.skops", "skops")

    def test_created_at_defaults_to_now(self, regressor: Any) -> None:
        """Without created_at the manifest gets the current UTC time in whole seconds."""
        manifest = Manifest.describe(regressor, name="diabetes", version=2, sha256=SHA)

        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest.created_at)

    def test_created_at_given(self, regressor: Any) -> None:
        """An explicit created_at is kept as given."""
        manifest = Manifest.describe(
            regressor, name="d", version=1, sha256=SHA, created_at="2026-01-02T03:04:05Z"
        )

        assert manifest.created_at == "2026-01-02T03:04:05Z"

    def test_explicit_feature_names(self, regressor: Any) -> None:
        """Explicit feature names are recorded as a tuple."""
        names = [f"f{index}" for index in range(10)]

        manifest = Manifest.describe(
            regressor, name="d", version=1, sha256=SHA, feature_names=names
        )

        assert tuple(names) == manifest.feature_names

    def test_feature_names_in_(self) -> None:
        """Without explicit names, the model's feature_names_in_ are used."""
        model = LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0])
        model.feature_names_in_ = np.array(["a", "b", "c"], dtype=object)

        manifest = Manifest.describe(model, name="d", version=1, sha256=SHA)

        assert manifest.feature_names == ("a", "b", "c")

    def test_explicit_names_win(self) -> None:
        """Explicit feature names take precedence over feature_names_in_."""
        model = LinearRegression().fit(np.eye(3), [1.0, 2.0, 3.0])
        model.feature_names_in_ = np.array(["a", "b", "c"], dtype=object)

        manifest = Manifest.describe(
            model, name="d", version=1, sha256=SHA, feature_names=("x", "y", "z")
        )

        assert manifest.feature_names == ("x", "y", "z")

    def test_feature_names_length_mismatch(self, classifier: Any) -> None:
        """Feature names that do not match n_features are refused."""
        with pytest.raises(ManifestError, match="field 'feature_names' has 3 names but n_fe"):
            Manifest.describe(
                classifier, name="iris", version=1, sha256=SHA, feature_names=("a", "b", "c")
            )

    def test_feature_names_as_one_string(self, classifier: Any) -> None:
        """A single string is refused rather than split into one name per letter."""
        with pytest.raises(ManifestError, match="not one string"):
            Manifest.describe(classifier, name="iris", version=1, sha256=SHA, feature_names="abcd")

    def test_unfitted_model(self) -> None:
        """A model without n_features_in_ (not fitted) is refused as an artifact problem."""
        with pytest.raises(ArtifactError, match="Model 'iris' version 1: the model has no n_fe"):
            Manifest.describe(DecisionTreeClassifier(), name="iris", version=1, sha256=SHA)

    def test_hand_written_predictor(self) -> None:
        """An object that is not a scikit-learn estimator is described as a regressor."""

        class Doubler:
            n_features_in_ = 2

            def predict(self, rows: Any) -> Any:
                return np.asarray(rows).sum(axis=1) * 2

        manifest = Manifest.describe(Doubler(), name="d", version=1, sha256=SHA)

        assert (
            manifest.task,
            manifest.classes,
            manifest.outputs,
        ) == ("regression", None, ("predict",))


def test_utc_now_format() -> None:
    """utc_now() is RFC 3339 UTC with a Z suffix and no fraction of a second."""
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", utc_now())
