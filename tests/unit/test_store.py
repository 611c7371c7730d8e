"""Tests for service.store.store: listing, verifying, loading and registering versions."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
import sklearn.base
import skops.io
from numpy.typing import NDArray
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes
from sklearn.datasets import load_iris
from sklearn.linear_model import LinearRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from service.store import ArtifactError
from service.store import ChecksumMismatchError
from service.store import FeatureSchemaError
from service.store import ManifestError
from service.store import ModelStore
from service.store import StoreError
from service.store import StoreLayoutError
from service.store import UntrustedArtifactError
from service.store import VersionMismatchError
from service.store.features import Feature
from service.store.features import FeatureSchema
from service.store.store import ARTIFACT_FILE
from service.store.store import MANIFEST_FILE
from service.store.store import SKOPS_FILE


@pytest.fixture(name="iris_x", scope="module")
def _iris_x() -> NDArray[np.float64]:
    features: NDArray[np.float64] = load_iris(return_X_y=True)[0]
    return features


@pytest.fixture(name="classifier", scope="module")
def _classifier() -> Any:
    features, target = load_iris(return_X_y=True)
    return DecisionTreeClassifier(random_state=0).fit(features, target)


@pytest.fixture(name="regressor", scope="module")
def _regressor() -> Any:
    features, target = load_diabetes(return_X_y=True)
    return LinearRegression().fit(features, target)


@pytest.fixture(name="store")
def _store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")


@pytest.fixture(name="saved")
def _saved(store: ModelStore, classifier: Any) -> ModelStore:
    """A store holding the classifier as version 1 of 'iris', as a first-release joblib."""
    store.save(classifier, "iris", format="joblib")
    return store


def _dump(model: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def _dump_as_other_sklearn(model: object) -> bytes:
    """Pickle ``model`` as if scikit-learn 0.0.1 had made it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "0.0.1")
        return _dump(model)


def _version_dir(store: ModelStore, version: int = 1, name: str = "iris") -> Path:
    return store.root / name / str(version)


def _edit_manifest(store: ModelStore, version: int = 1, **changes: object) -> None:
    path = _version_dir(store, version) / MANIFEST_FILE
    document = json.loads(path.read_bytes())
    document.update(changes)
    path.write_text(json.dumps(document))


def _replace_artifact(store: ModelStore, data: bytes, *, fix_manifest: bool) -> None:
    (_version_dir(store) / ARTIFACT_FILE).write_bytes(data)
    if fix_manifest:
        _edit_manifest(store, sha256=hashlib.sha256(data).hexdigest())


def _forbid_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object, **_kwargs: object) -> None:
        pytest.fail("the artifact was unpickled")

    monkeypatch.setattr(joblib, "load", fail)


def _leftovers(store: ModelStore, name: str = "iris") -> list[str]:
    return sorted(entry.name for entry in (store.root / name).iterdir())


class WarnsWhenUnpickled:
    """A predictor whose unpickling emits a UserWarning."""

    def __init__(self) -> None:
        # pickle skips __setstate__ for an empty state.
        self.n_features_in_ = 4

    def predict(self, rows: Any) -> Any:
        return np.zeros(len(rows))

    def __setstate__(self, state: dict[str, Any]) -> None:
        warnings.warn("unpickled", UserWarning, stacklevel=1)
        self.__dict__.update(state)


class TestErrors:
    def test_message_names_model_and_version(self) -> None:
        """str() of a store error is one line naming the model and version."""
        error = ArtifactError("it broke:\nbadly", name="iris", version=2)

        assert str(error) == "Model 'iris' version 2: it broke: badly"

    @pytest.mark.parametrize(
        ("error", "message"),
        [
            (ManifestError("field 'x' is bad", name="a", version=1), "field 'x' is bad"),
            (
                ChecksumMismatchError(name="a", version=1, expected="e", actual="b"),
                "the artifact's sha256 is b but the manifest says e",
            ),
            (
                VersionMismatchError(
                    name="a", version=1, artifact_version="0.20.0", running_version="1.5.0"
                ),
                "the artifact was made with scikit-learn 0.20.0 but 1.5.0 is running",
            ),
            (ArtifactError("no predict()\nat all", name="a", version=1), "no predict() at all"),
        ],
    )
    def test_each_error_caught_as_store_error_names_version(
        self, error: StoreError, message: str
    ) -> None:
        """Caught as StoreError, each kind of error says in one line which version and why."""
        with pytest.raises(StoreError) as caught:
            raise error

        assert f"Model 'a' version 1: {message}" == str(caught.value)


class TestNames:
    def test_missing_root(self, store: ModelStore) -> None:
        """A store whose root does not exist has no names."""
        assert store.names() == []

    def test_sorted(self, store: ModelStore) -> None:
        """Names are returned sorted."""
        for name in ("wine", "iris", "diabetes"):
            (store.root / name).mkdir(parents=True)

        assert store.names() == ["diabetes", "iris", "wine"]

    def test_ignores_files_and_bad_names(self, store: ModelStore) -> None:
        """Files, hidden directories and directories with invalid names are not models."""
        store.root.mkdir()
        (store.root / "README.md").write_text("store")
        for name in (".hidden", "-dash", "_under", "a" * 65, "iris"):
            (store.root / name).mkdir()

        assert store.names() == ["iris"]

    def test_root_is_a_file(self, tmp_path: Path) -> None:
        """A root that is a file is a layout error, not an empty store."""
        (tmp_path / "store").write_text("")

        with pytest.raises(StoreLayoutError, match=r"^Cannot list "):
            ModelStore(tmp_path / "store").names()


class TestVersions:
    def test_unknown_name(self, store: ModelStore) -> None:
        """A name with no directory has no versions."""
        assert store.versions("iris") == []

    def test_numeric_order(self, store: ModelStore) -> None:
        """Versions ascend numerically, not as strings."""
        for version in (10, 2, 1):
            _version_dir(store, version).mkdir(parents=True)

        assert store.versions("iris") == [1, 2, 10]

    def test_ignores_other_entries(self, store: ModelStore) -> None:
        """Temp dirs, non-integers, leading zeros, zero and files are not versions."""
        for entry in (".tmp-1a2b", "01", "0", "-1", "latest", "1.5", "3"):
            (store.root / "iris" / entry).mkdir(parents=True)
        (store.root / "iris" / "4").write_text("a file")

        assert store.versions("iris") == [3]

    def test_invalid_name(self, store: ModelStore) -> None:
        """A name that could escape the root is refused."""
        with pytest.raises(StoreLayoutError, match=re.escape("Invalid model name '../etc'")):
            store.versions("../etc")

    def test_latest_is_last(self, saved: ModelStore, classifier: Any) -> None:
        """The newest registered version is the last one listed."""
        saved.save(classifier, "iris")
        newest = saved.save(classifier, "iris")

        assert newest.version == saved.versions("iris")[-1]


class TestReadManifest:
    def test_reads_what_save_wrote(self, store: ModelStore, classifier: Any) -> None:
        """The manifest read back equals the one save returned."""
        manifest = store.save(classifier, "iris")

        assert manifest == store.read_manifest("iris", 1)

    def test_missing(self, saved: ModelStore) -> None:
        """A version without model.json is refused."""
        (_version_dir(saved) / MANIFEST_FILE).unlink()

        with pytest.raises(ManifestError, match=r"^Model 'iris' version 1: manifest .* is missing"):
            saved.read_manifest("iris", 1)

    def test_bad_field_names_directory(self, saved: ModelStore) -> None:
        """A bad field is reported for the directory's model and version."""
        _edit_manifest(saved, name=42)

        with pytest.raises(ManifestError, match=r"^Model 'iris' version 1: .*field 'name'"):
            saved.read_manifest("iris", 1)

    def test_version_disagrees_with_directory(self, saved: ModelStore) -> None:
        """A manifest copied into another version's directory is refused."""
        _version_dir(saved).rename(_version_dir(saved, 2))

        with pytest.raises(ManifestError, match="is for model 'iris' version 1"):
            saved.read_manifest("iris", 2)

    def test_name_disagrees_with_directory(self, saved: ModelStore) -> None:
        """A manifest under another model's directory is refused."""
        (saved.root / "iris").rename(saved.root / "wine")

        with pytest.raises(ManifestError, match=r"^Model 'wine' version 1: .* model 'iris'"):
            saved.read_manifest("wine", 1)

    def test_invalid_version(self, saved: ModelStore) -> None:
        """A version that is not a positive integer is refused."""
        with pytest.raises(StoreLayoutError, match="invalid version 0"):
            saved.read_manifest("iris", 0)


class TestVerify:
    def test_valid(self, saved: ModelStore) -> None:
        """A good version verifies and returns its manifest."""
        assert saved.read_manifest("iris", 1) == saved.verify("iris", 1)

    def test_checksum_without_unpickling(
        self, saved: ModelStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A changed artifact is detected by its checksum, without unpickling it."""
        artifact = _version_dir(saved) / ARTIFACT_FILE
        artifact.write_bytes(artifact.read_bytes() + b"\0")
        _forbid_unpickling(monkeypatch)

        with pytest.raises(ChecksumMismatchError, match=r"^Model 'iris' version 1: the artif"):
            saved.verify("iris", 1)

    def test_version_mismatch_without_unpickling(
        self, saved: ModelStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A manifest naming another scikit-learn version fails verification."""
        _edit_manifest(saved, framework_version="0.0.1")
        _forbid_unpickling(monkeypatch)

        with pytest.raises(VersionMismatchError, match=re.escape("made with scikit-learn 0.0.1")):
            saved.verify("iris", 1)

    def test_missing_artifact(self, saved: ModelStore) -> None:
        """A version without its artifact fails verification."""
        (_version_dir(saved) / ARTIFACT_FILE).unlink()

        with pytest.raises(ArtifactError, match="is missing"):
            saved.verify("iris", 1)


class TestLoad:
    def test_working_model(
        self, saved: ModelStore, classifier: Any, iris_x: NDArray[np.float64]
    ) -> None:
        """A loaded version predicts what the saved model predicted."""
        loaded = saved.load("iris", 1)

        np.testing.assert_array_equal(classifier.predict(iris_x), loaded.model.predict(iris_x))

    def test_result_fields(self, saved: ModelStore) -> None:
        """The result carries the manifest and no version mismatch."""
        loaded = saved.load("iris", 1)

        assert (saved.read_manifest("iris", 1), False) == (
            loaded.manifest,
            loaded.version_mismatch,
        )

    def test_checksum_mismatch(self, saved: ModelStore) -> None:
        """Artifact bytes that differ from the manifest's sha256 are refused."""
        artifact = _version_dir(saved) / ARTIFACT_FILE
        changed = artifact.read_bytes() + b"\0"
        artifact.write_bytes(changed)

        with pytest.raises(ChecksumMismatchError) as info:
            saved.load("iris", 1)
        assert hashlib.sha256(changed).hexdigest() == info.value.actual

    def test_missing_manifest(self, saved: ModelStore) -> None:
        """A version without a manifest is refused."""
        (_version_dir(saved) / MANIFEST_FILE).unlink()

        with pytest.raises(ManifestError):
            saved.load("iris", 1)

    def test_missing_artifact(self, saved: ModelStore) -> None:
        """A version without its artifact is refused."""
        (_version_dir(saved) / ARTIFACT_FILE).unlink()

        with pytest.raises(ArtifactError, match="is missing"):
            saved.load("iris", 1)

    def test_manifest_version_mismatch(
        self, saved: ModelStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A manifest naming another scikit-learn version is refused before unpickling."""
        _edit_manifest(saved, framework_version="0.0.1")
        _forbid_unpickling(monkeypatch)

        with pytest.raises(VersionMismatchError) as info:
            saved.load("iris", 1)
        assert ("0.0.1", sklearn.__version__) == (
            info.value.artifact_version,
            info.value.running_version,
        )

    def test_manifest_version_mismatch_allowed(
        self, saved: ModelStore, iris_x: NDArray[np.float64]
    ) -> None:
        """With allow_version_mismatch the version loads, flagged as a mismatch."""
        _edit_manifest(saved, framework_version="0.0.1")

        loaded = saved.load("iris", 1, allow_version_mismatch=True)

        assert loaded.version_mismatch
        assert len(iris_x) == len(loaded.model.predict(iris_x))

    def test_pickled_version_mismatch(self, saved: ModelStore, classifier: Any) -> None:
        """An artifact scikit-learn reports as from another version is refused, whatever the
        manifest says."""
        _replace_artifact(saved, _dump_as_other_sklearn(classifier), fix_manifest=True)

        with pytest.raises(VersionMismatchError, match=re.escape("made with scikit-learn 0.0.1")):
            saved.load("iris", 1)

    def test_pickled_version_mismatch_allowed(self, saved: ModelStore, classifier: Any) -> None:
        """With allow_version_mismatch, scikit-learn's own version warning only flags the load."""
        _replace_artifact(saved, _dump_as_other_sklearn(classifier), fix_manifest=True)

        loaded = saved.load("iris", 1, allow_version_mismatch=True)

        assert loaded.version_mismatch

    def test_truncated_artifact(self, saved: ModelStore) -> None:
        """A truncated artifact under the original manifest fails its checksum."""
        data = (_version_dir(saved) / ARTIFACT_FILE).read_bytes()
        _replace_artifact(saved, data[: len(data) // 2], fix_manifest=False)

        with pytest.raises(ChecksumMismatchError):
            saved.load("iris", 1)

    def test_truncated_artifact_with_matching_checksum(self, saved: ModelStore) -> None:
        """A truncated artifact whose checksum was updated fails to unpickle."""
        data = (_version_dir(saved) / ARTIFACT_FILE).read_bytes()
        _replace_artifact(saved, data[: len(data) // 2], fix_manifest=True)

        with pytest.raises(ArtifactError, match="cannot be unpickled") as info:
            saved.load("iris", 1)
        assert info.value.__cause__ is not None

    def test_artifact_without_predict(self, saved: ModelStore) -> None:
        """An artifact that unpickles to something without predict() is refused."""
        _replace_artifact(saved, _dump({"weights": [1, 2]}), fix_manifest=True)

        with pytest.raises(ArtifactError, match="dict has no callable predict"):
            saved.load("iris", 1)

    def test_missing_predict_proba(self, saved: ModelStore, regressor: Any) -> None:
        """An artifact lacking an output its manifest lists is refused."""
        _replace_artifact(saved, _dump(regressor), fix_manifest=True)
        _edit_manifest(saved, n_features=10, feature_names=None)

        with pytest.raises(ArtifactError, match="no callable predict_proba"):
            saved.load("iris", 1)

    def test_n_features_mismatch(self, saved: ModelStore) -> None:
        """A model expecting another number of features than the manifest is refused."""
        _edit_manifest(saved, n_features=5)

        with pytest.raises(ArtifactError, match="expects 4 features but the manifest says 5"):
            saved.load("iris", 1)

    def test_other_warnings_pass_through(self, store: ModelStore) -> None:
        """Warnings other than scikit-learn's version warning reach the caller."""
        with pytest.warns(UserWarning, match="unpickled"):
            store.save(WarnsWhenUnpickled(), "custom", format="joblib")

        with pytest.warns(UserWarning, match="unpickled"):
            loaded = store.load("custom", 1)
        assert not loaded.version_mismatch


class TestRegister:
    def test_assigns_one_two_three(
        self, store: ModelStore, tmp_path: Path, classifier: Any
    ) -> None:
        """Registrations get versions 1, 2, 3 in turn."""
        artifact = tmp_path / "model.joblib"
        artifact.write_bytes(_dump(classifier))

        versions = [store.register(artifact, "iris").version for _ in range(3)]

        assert versions == [1, 2, 3]
        assert store.versions("iris") == [1, 2, 3]

    def test_continues_after_highest(self, store: ModelStore, classifier: Any) -> None:
        """A new version follows the highest existing one, even across gaps."""
        _version_dir(store, 7).mkdir(parents=True)

        assert store.save(classifier, "iris").version == 8

    def test_copies_skops_bytes_and_checksum(
        self, store: ModelStore, tmp_path: Path, classifier: Any
    ) -> None:
        """A registered skops file is stored as it is, and the manifest has its sha256."""
        artifact = tmp_path / "model.skops"
        skops.io.dump(classifier, artifact)

        manifest = store.register(artifact, "iris")

        stored = (_version_dir(store) / SKOPS_FILE).read_bytes()
        assert artifact.read_bytes() == stored
        assert (hashlib.sha256(stored).hexdigest(), "skops") == (manifest.sha256, manifest.format)

    def test_writes_a_joblib_file_as_skops(
        self,
        store: ModelStore,
        tmp_path: Path,
        classifier: Any,
        iris_x: NDArray[np.float64],
    ) -> None:
        """A registered joblib file becomes model.skops, which predicts what the pickle did."""
        artifact = tmp_path / "model.joblib"
        artifact.write_bytes(_dump(classifier))

        manifest = store.register(artifact, "iris")

        assert (SKOPS_FILE, "skops") == (manifest.artifact, manifest.format)
        assert [MANIFEST_FILE, SKOPS_FILE] == sorted(
            path.name for path in _version_dir(store).iterdir()
        )
        loaded = store.load("iris", 1).model
        np.testing.assert_array_equal(
            classifier.predict_proba(iris_x), loaded.predict_proba(iris_x)
        )

    def test_writes_returned_manifest(self, store: ModelStore, regressor: Any) -> None:
        """The manifest on disk is the one register returns, with the given feature names."""
        names = [f"f{index}" for index in range(10)]

        manifest = store.save(regressor, "diabetes", feature_names=names)

        assert manifest == store.read_manifest("diabetes", 1)
        assert tuple(names) == manifest.feature_names

    def test_refuses_non_estimator(self, store: ModelStore, tmp_path: Path) -> None:
        """A pickle of something without predict() is not registered."""
        artifact = tmp_path / "weights.joblib"
        artifact.write_bytes(_dump({"weights": [1, 2]}))

        with pytest.raises(ArtifactError, match="dict, which has no predict"):
            store.register(artifact, "iris")
        assert store.versions("iris") == []

    def test_refuses_non_pickle(self, store: ModelStore, tmp_path: Path) -> None:
        """A file that does not unpickle is not registered."""
        artifact = tmp_path / "notes.txt"
        artifact.write_bytes(b"not a pickle")

        with pytest.raises(ArtifactError, match="cannot be unpickled"):
            store.register(artifact, "iris")

    def test_refuses_missing_file(self, store: ModelStore, tmp_path: Path) -> None:
        """A path that does not exist is refused as an artifact error."""
        with pytest.raises(ArtifactError, match="cannot read"):
            store.register(tmp_path / "nope.joblib", "iris")

    def test_refuses_unfitted(self, store: ModelStore) -> None:
        """An unfitted estimator is not registered."""
        with pytest.raises(ArtifactError, match="no n_features_in_"):
            store.save(DecisionTreeClassifier(), "iris")

    def test_refuses_other_sklearn(
        self, store: ModelStore, tmp_path: Path, classifier: Any
    ) -> None:
        """An artifact from another scikit-learn version is not registered."""
        artifact = tmp_path / "old.joblib"
        artifact.write_bytes(_dump_as_other_sklearn(classifier))

        with pytest.raises(VersionMismatchError, match=r"^Model 'iris': the artifact was made"):
            store.register(artifact, "iris")

    def test_refuses_untrusted_callable(self, store: ModelStore) -> None:
        """save() refuses a model holding a callable skops does not trust, naming it."""
        model = LinearRegression().fit(np.eye(2), [1.0, 2.0])
        model.hook = lambda: None

        with pytest.raises(UntrustedArtifactError, match=re.escape("test_store.<lambda>")):
            store.save(model, "linear")
        assert [] == store.versions("linear")

    def test_refuses_unpicklable(self, store: ModelStore) -> None:
        """save() as joblib refuses a model that cannot be pickled."""
        model = LinearRegression().fit(np.eye(2), [1.0, 2.0])
        model.hook = lambda: None

        with pytest.raises(ArtifactError, match="cannot be saved as joblib"):
            store.save(model, "linear", format="joblib")

    @pytest.mark.parametrize("name", ["", "../iris", "iris/2", ".tmp-x", "a" * 65, "sp ace"])
    def test_refuses_invalid_name(self, store: ModelStore, classifier: Any, name: str) -> None:
        """A name that is not a safe directory name is refused."""
        with pytest.raises(StoreLayoutError, match="Invalid model name"):
            store.save(classifier, name)

    def test_refuses_wrong_feature_names(self, store: ModelStore, classifier: Any) -> None:
        """Feature names that do not match the model are refused and nothing is written."""
        with pytest.raises(ManifestError, match="feature_names"):
            store.save(classifier, "iris", feature_names=["a"])
        assert store.versions("iris") == []

    def test_rename_failure_leaves_nothing(
        self, saved: ModelStore, classifier: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failed publish leaves no new version and no temp dir behind."""

        def fail(_src: object, _dst: object) -> None:
            raise OSError(errno.EIO, "injected I/O error")

        monkeypatch.setattr(os, "rename", fail)

        with pytest.raises(StoreLayoutError, match="injected I/O error"):
            saved.save(classifier, "iris")
        assert _leftovers(saved) == ["1"]

    def test_write_failure_leaves_nothing(
        self, saved: ModelStore, classifier: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A failure while writing the files leaves no new version and no temp dir behind."""

        def fail(_fd: int) -> None:
            raise OSError(errno.ENOSPC, "injected full disk")

        monkeypatch.setattr(os, "fsync", fail)

        with pytest.raises(StoreLayoutError, match="injected full disk"):
            saved.save(classifier, "iris")
        assert _leftovers(saved) == ["1"]

    def test_interrupt_leaves_nothing(
        self, saved: ModelStore, classifier: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An interrupt mid-write also removes the temp dir."""

        def interrupt(_fd: int) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(os, "fsync", interrupt)

        with pytest.raises(KeyboardInterrupt):
            saved.save(classifier, "iris")
        assert _leftovers(saved) == ["1"]

    def test_collision_takes_next_number(
        self, saved: ModelStore, classifier: Any, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """When another writer publishes the same number first, the next one is used."""
        real_rename: Callable[[Any, Any], None] = os.rename
        targets: list[Path] = []

        def rival_first(src: Any, dst: Any) -> None:
            if not targets:
                Path(dst).mkdir()
                (Path(dst) / "rival").write_bytes(b"")
            targets.append(Path(dst))
            real_rename(src, dst)

        monkeypatch.setattr(os, "rename", rival_first)

        manifest = saved.save(classifier, "iris")

        assert [_version_dir(saved, 2), _version_dir(saved, 3)] == targets
        assert manifest.version == 3
        assert manifest == saved.read_manifest("iris", 3)
        assert [path.name for path in _version_dir(saved, 2).iterdir()] == ["rival"]
        assert _leftovers(saved) == ["1", "2", "3"]

    def test_skips_number_taken_by_a_file(self, saved: ModelStore, classifier: Any) -> None:
        """A stray file named like the next version is skipped, not overwritten."""
        _version_dir(saved, 2).write_text("stray")

        manifest = saved.save(classifier, "iris")

        assert manifest.version == 3
        assert _version_dir(saved, 2).read_text() == "stray"

    def test_version_dir_mode_follows_umask(self, store: ModelStore, classifier: Any) -> None:
        """A new version directory gets the umask's permissions, not a private temp dir's."""
        old_umask = os.umask(0o022)
        try:
            store.save(classifier, "iris")
        finally:
            os.umask(old_umask)

        assert _version_dir(store).stat().st_mode & 0o777 == 0o755


HOMES = pd.DataFrame(
    {
        "city": ["paris", "rome", "oslo", "rome"] * 5,
        "rooms": [1, 2, 3, 4] * 5,
        "garden": [True, False] * 10,
    }
)


@pytest.fixture(name="homes_model", scope="module")
def _homes_model() -> Any:
    """A pipeline fitted on a table: city one-hot encoded, rooms scaled, garden passed through."""
    columns = ColumnTransformer(
        [("city", OneHotEncoder(), ["city"]), ("rooms", StandardScaler(), ["rooms"])],
        remainder="passthrough",
    )
    return make_pipeline(columns, LogisticRegression()).fit(HOMES, [0, 1, 1, 0] * 5)


class TestFeatureSchema:
    def test_inferred_with_an_example(self, store: ModelStore, homes_model: Any) -> None:
        """save() records the schema inferred from the model and the example, and loads back."""
        manifest = store.save(homes_model, "homes", example=HOMES)

        assert manifest.features is not None
        assert [(f.name, f.type, f.categories) for f in manifest.features.features] == [
            ("city", "string", ("oslo", "paris", "rome")),
            ("rooms", "int", None),
            ("garden", "bool", None),
        ]
        assert manifest == store.read_manifest("homes", 1)
        assert store.load("homes", 1).model.predict(HOMES.head(2)).tolist() == [0, 1]

    def test_declared_schema_is_recorded(
        self, store: ModelStore, homes_model: Any, tmp_path: Path
    ) -> None:
        """register() records a declared schema as it is, from a joblib artifact."""
        declared = FeatureSchema(
            (
                Feature("city", "string", nullable=True, categories=("oslo", "paris", "rome")),
                Feature("rooms", "float"),
                Feature("garden", "bool"),
            )
        )
        artifact = tmp_path / "homes.joblib"
        artifact.write_bytes(_dump(homes_model))

        manifest = store.register(artifact, "homes", features=declared)

        assert declared == manifest.features

    def test_example_rows_are_probed(self, store: ModelStore, homes_model: Any) -> None:
        """Without categories in the schema, the example's rows show the written model predicts."""
        declared = FeatureSchema(
            (Feature("city", "string"), Feature("rooms", "int"), Feature("garden", "bool"))
        )

        with pytest.raises(ArtifactError, match="rejects every probe row; give an example"):
            store.save(homes_model, "homes", features=declared)
        manifest = store.save(homes_model, "homes", features=declared, example=HOMES)

        assert (manifest.version, manifest.features) == (1, declared)

    def test_joblib_version_converts_on_probes_from_its_schema(
        self, store: ModelStore, homes_model: Any
    ) -> None:
        """convert() checks a table model on rows built from its schema, not numeric arrays."""
        pickled = store.save(homes_model, "homes", example=HOMES, format="joblib")

        converted = store.convert("homes", 1)

        assert pickled.features is not None
        assert converted is not None
        assert (converted.format, converted.features) == ("skops", pickled.features)
        assert store.load("homes", 1).model.predict(HOMES.head(2)).tolist() == [0, 1]

    def test_untyped_column_refused_and_nothing_written(
        self, store: ModelStore, homes_model: Any
    ) -> None:
        """A column nothing types refuses the model, naming the column; no version appears."""
        with pytest.raises(FeatureSchemaError, match="'garden'"):
            store.save(homes_model, "homes")
        assert store.versions("homes") == []

    def test_numeric_table_model_gets_an_all_float_schema(self, store: ModelStore) -> None:
        """A model fitted on a table of numbers gets a float schema, so rows may name columns."""
        model = LinearRegression().fit(HOMES[["rooms"]].assign(area=2.5), [1.0, 2.0] * 10)

        manifest = store.save(model, "prices")

        assert manifest.features == FeatureSchema(
            (Feature("rooms", "float"), Feature("area", "float"))
        )

    def test_numpy_model_has_no_schema(self, saved: ModelStore) -> None:
        """A model fitted on numpy arrays is recorded as before, without features."""
        assert saved.read_manifest("iris", 1).features is None
