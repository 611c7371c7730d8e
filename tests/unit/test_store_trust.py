"""The store's trust rules: skops audited before it runs, pickles only when allowed, convert."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from numpy.typing import NDArray
from sklearn.datasets import load_diabetes
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from service.store import ARTIFACT_FILE
from service.store import MANIFEST_FILE
from service.store import SKOPS_FILE
from service.store import ArtifactError
from service.store import Manifest
from service.store import ModelStore
from service.store import PickleNotAllowedError
from service.store import UntrustedArtifactError
from service.store import artifacts
from tests.custom_types import CLIP
from tests.custom_types import MARKER_ON_LOAD
from tests.custom_types import Clip
from tests.custom_types import MarkerOnLoad
from tests.custom_types import crafted_pickle


@pytest.fixture(name="iris", scope="module")
def _iris() -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    features, target = load_iris(return_X_y=True)
    return features, target


@pytest.fixture(name="forest", scope="module")
def _forest(iris: tuple[NDArray[np.float64], NDArray[np.int64]]) -> Any:
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(*iris)


def write_version(root: Path, name: str, version: int, data: bytes, manifest: Manifest) -> None:
    """Put ``data`` in the store under a manifest like ``manifest`` with a correct sha256."""
    directory = root / name / str(version)
    directory.mkdir(parents=True)
    (directory / manifest.artifact).write_bytes(data)
    final = replace(manifest, name=name, version=version, sha256=hashlib.sha256(data).hexdigest())
    (directory / MANIFEST_FILE).write_bytes(final.to_json())


def crafted_joblib_version(
    root: Path, marker: Path, forest: Any, *, name: str = "evil", version: int = 1
) -> None:
    """A pickle that touches ``marker`` as ``name`` ``version``, under a manifest describing
    ``forest`` with the pickle's sha256 (as whoever can write the store can make one)."""
    manifest = Manifest.describe(
        forest, name=name, version=version, sha256="0" * 64, format="joblib"
    )
    write_version(root, name, version, crafted_pickle(marker), manifest)


class TestPicklePolicy:
    def test_refused_pickle_never_runs(self, tmp_path: Path, forest: Any) -> None:
        """With pickles not allowed, load and verify refuse a crafted pickle; nothing runs."""
        marker = tmp_path / "marker"
        crafted_joblib_version(tmp_path / "store", marker, forest)
        store = ModelStore(tmp_path / "store", allow_pickle=False)

        with pytest.raises(PickleNotAllowedError, match="PREDICTION_ALLOW_PICKLE=false"):
            store.load("evil", 1)
        with pytest.raises(PickleNotAllowedError):
            store.verify("evil", 1)
        assert not marker.exists()

    def test_allowed_pickle_runs(self, tmp_path: Path, forest: Any) -> None:
        """The crafted pickle does run when pickles are allowed (what the refusal prevents)."""
        marker = tmp_path / "marker"
        crafted_joblib_version(tmp_path / "store", marker, forest)

        with pytest.raises(ArtifactError, match="NoneType has no callable predict"):
            ModelStore(tmp_path / "store").load("evil", 1)
        assert marker.exists()

    def test_refused_on_the_manifest_alone(self, tmp_path: Path, forest: Any) -> None:
        """A refused pickle is not read at all: a missing artifact is still a refused pickle."""
        crafted_joblib_version(tmp_path / "store", tmp_path / "marker", forest)
        (tmp_path / "store" / "evil" / "1" / ARTIFACT_FILE).unlink()

        with pytest.raises(PickleNotAllowedError):
            ModelStore(tmp_path / "store", allow_pickle=False).load("evil", 1)

    def test_one_warning_per_joblib_version(
        self, tmp_path: Path, forest: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An allowed joblib version loads with one warning saying how to convert it."""
        store = ModelStore(tmp_path / "store")
        store.save(forest, "iris", format="joblib")

        with caplog.at_level(logging.WARNING, logger="service.store.store"):
            store.load("iris", 1)
            store.load("iris", 1)

        (record,) = caplog.records
        assert "python -m service convert" in record.getMessage()

    def test_manifest_without_format_is_joblib(self, tmp_path: Path, forest: Any) -> None:
        """A first-release manifest (no format field) describes a joblib artifact."""
        store = ModelStore(tmp_path / "store")
        store.save(forest, "iris", format="joblib")
        path = tmp_path / "store" / "iris" / "1" / MANIFEST_FILE
        document = json.loads(path.read_bytes())
        del document["format"]
        path.write_text(json.dumps(document))

        assert "joblib" == store.read_manifest("iris", 1).format
        with pytest.raises(PickleNotAllowedError):
            ModelStore(tmp_path / "store", allow_pickle=False).load("iris", 1)


class TestSkopsTrust:
    def test_crafted_skops_refused_before_it_runs(self, tmp_path: Path) -> None:
        """A skops file naming an untrusted type is refused, naming it; its code never runs."""
        marker = tmp_path / "marker"
        model = LinearRegression().fit(np.eye(2), [1.0, 2.0])
        model.hook = MarkerOnLoad(str(marker))
        manifest = Manifest.describe(model, name="hooked", version=1, sha256="0" * 64)
        write_version(tmp_path / "store", "hooked", 1, skops.io.dumps(model), manifest)
        store = ModelStore(tmp_path / "store")

        with pytest.raises(UntrustedArtifactError) as info:
            store.load("hooked", 1)
        with pytest.raises(UntrustedArtifactError):
            store.verify("hooked", 1)
        assert (MARKER_ON_LOAD,) == info.value.types
        assert not marker.exists()
        # The control: trusting the type does run its code, which is what the audit stopped.
        ModelStore(tmp_path / "store", trusted_types=[MARKER_ON_LOAD]).load("hooked", 1)
        assert marker.exists()

    def test_user_transformer_needs_trust(
        self, tmp_path: Path, iris: tuple[NDArray[np.float64], NDArray[np.int64]]
    ) -> None:
        """A model with a user's own class registers and loads only once the class is trusted."""
        model = make_pipeline(Clip(-2.0, 6.0), LogisticRegression(max_iter=500)).fit(*iris)
        artifact = tmp_path / "clip.joblib"
        joblib.dump(model, artifact)

        with pytest.raises(UntrustedArtifactError, match=CLIP):
            ModelStore(tmp_path / "store").register(artifact, "clip")
        trusted = ModelStore(tmp_path / "store", trusted_types=[CLIP])
        trusted.register(artifact, "clip")

        with pytest.raises(UntrustedArtifactError, match=CLIP):
            ModelStore(tmp_path / "store").load("clip", 1)
        loaded = trusted.load("clip", 1).model
        np.testing.assert_array_equal(model.predict_proba(iris[0]), loaded.predict_proba(iris[0]))

    @pytest.mark.parametrize(
        "estimator",
        [
            HistGradientBoostingClassifier(max_iter=5, random_state=0),
            make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=500)),
        ],
        ids=["hist_gradient_boosting", "imputer_pipeline"],
    )
    def test_common_scikit_learn_models_need_no_trust_list(
        self,
        tmp_path: Path,
        estimator: Any,
        iris: tuple[NDArray[np.float64], NDArray[np.int64]],
    ) -> None:
        """Fitted scikit-learn models whose internals skops leaves untrusted save and load."""
        model = estimator.fit(*iris)
        store = ModelStore(tmp_path / "store")
        store.save(model, "iris")

        loaded = store.load("iris", 1).model
        np.testing.assert_array_equal(model.predict(iris[0]), loaded.predict(iris[0]))

    def test_tells_formats_apart_by_content(self, forest: Any) -> None:
        """A skops file is recognised by its bytes (a zip), anything else is joblib."""
        assert ("skops", "joblib") == (
            artifacts.format_of(skops.io.dumps(forest)),
            artifacts.format_of(crafted_pickle(Path("unused"))),
        )


class TestConvert:
    @pytest.fixture(name="legacy")
    def _legacy(self, tmp_path: Path, forest: Any) -> ModelStore:
        """A first-release store: a forest and a regressor, both joblib."""
        store = ModelStore(tmp_path / "store")
        store.save(forest, "iris", format="joblib")
        features, target = load_diabetes(return_X_y=True)
        store.save(LinearRegression().fit(features, target), "diabetes", format="joblib")
        return store

    def test_rewrites_joblib_as_skops_in_place(
        self, legacy: ModelStore, forest: Any, iris: tuple[NDArray[np.float64], NDArray[np.int64]]
    ) -> None:
        """convert leaves model.skops and a skops manifest, and the model predicts the same."""
        before = legacy.read_manifest("iris", 1)

        after = legacy.convert("iris", 1)

        assert after is not None
        assert [MANIFEST_FILE, SKOPS_FILE] == sorted(
            path.name for path in (legacy.root / "iris" / "1").iterdir()
        )
        assert after == legacy.read_manifest("iris", 1)
        assert ("skops", before.created_at) == (after.format, after.created_at)
        loaded = ModelStore(legacy.root, allow_pickle=False).load("iris", 1).model
        np.testing.assert_array_equal(forest.predict_proba(iris[0]), loaded.predict_proba(iris[0]))

    def test_skops_version_is_left_alone(self, legacy: ModelStore) -> None:
        """Converting a version that is already skops changes nothing."""
        legacy.convert("iris", 1)
        files = {path.name: path.read_bytes() for path in (legacy.root / "iris" / "1").iterdir()}

        assert legacy.convert("iris", 1) is None
        assert files == {
            path.name: path.read_bytes() for path in (legacy.root / "iris" / "1").iterdir()
        }

    def test_different_predictions_replace_nothing(
        self, legacy: ModelStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A converted model that answers differently on the probes is not written."""
        other = LinearRegression().fit(np.eye(10), np.arange(10.0))
        real_dump = artifacts.dump
        monkeypatch.setattr(
            artifacts, "dump", lambda model, fmt, *, name: real_dump(other, fmt, name=name)
        )
        directory = legacy.root / "diabetes" / "1"
        files = {path.name: path.read_bytes() for path in directory.iterdir()}

        with pytest.raises(ArtifactError, match="differs from the original"):
            legacy.convert("diabetes", 1)
        assert files == {path.name: path.read_bytes() for path in directory.iterdir()}

    def test_untrusted_types_replace_nothing(
        self, tmp_path: Path, iris: tuple[NDArray[np.float64], NDArray[np.int64]]
    ) -> None:
        """A pickle holding an untrusted class is not converted until the class is trusted."""
        model = make_pipeline(Clip(-2.0, 6.0), LogisticRegression(max_iter=500)).fit(*iris)
        ModelStore(tmp_path / "store").save(model, "clip", format="joblib")

        with pytest.raises(UntrustedArtifactError, match=CLIP):
            ModelStore(tmp_path / "store").convert("clip", 1)
        assert "joblib" == ModelStore(tmp_path / "store").read_manifest("clip", 1).format
        converted = ModelStore(tmp_path / "store", trusted_types=[CLIP]).convert("clip", 1)
        assert converted is not None
