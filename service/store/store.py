"""The on-disk model store: ``<root>/<name>/<version>/{model.skops,model.json}``.

It lists names and versions, verifies and loads one version, registers new versions atomically
and converts joblib versions to skops in place. It never decides which version to serve;
callers do (latest is ``versions()[-1]``).

Security: a skops artifact loads only if every type it names is trusted (skops' defaults,
:data:`~service.store.artifacts.SKLEARN_MODEL_TYPES` and the store's ``trusted_types``); it is
audited before anything of it is imported or built. A joblib artifact (``model.joblib``, all of
a first-release store) is a pickle and runs code when loaded; with ``allow_pickle=False`` it is
refused without its bytes being read. Either way only bytes whose sha256 matches the manifest
are loaded. A store is safe to share between the threads that call it: its only mutable state
is the set of versions it has warned about.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import Final

import pandas as pd
import sklearn

from service.store import artifacts
from service.store.errors import ArtifactError
from service.store.errors import ChecksumMismatchError
from service.store.errors import ManifestError
from service.store.errors import PickleNotAllowedError
from service.store.errors import StoreLayoutError
from service.store.errors import VersionMismatchError
from service.store.features import FeatureSchema
from service.store.manifest import ARTIFACT_FILE
from service.store.manifest import MANIFEST_FILE
from service.store.manifest import NAME_PATTERN
from service.store.manifest import SKOPS_FILE
from service.store.manifest import ArtifactFormat
from service.store.manifest import Manifest
from service.store.manifest import utc_now
from service.store.schema import infer_schema

__all__ = ["ARTIFACT_FILE", "MANIFEST_FILE", "SKOPS_FILE", "LoadedArtifact", "ModelStore"]

log = logging.getLogger(__name__)

# A version directory is a positive integer without leading zeros, so "01" and "1" can never
# both claim version 1.
_VERSION_DIR: Final = re.compile(r"[1-9][0-9]*")
_TEMP_PREFIX: Final = ".tmp-"
# Each failed rename means another writer took that number; give up rather than spin forever.
_MAX_REGISTER_ATTEMPTS: Final = 100


@dataclass(frozen=True, slots=True)
class LoadedArtifact:
    """A verified, unpickled model version."""

    manifest: Manifest
    model: Any
    version_mismatch: bool
    """True when it was loaded although made with another scikit-learn version."""


def _is_version(value: object) -> bool:
    # Checked at run time too: a bool or a float would build a path like ".../True".
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_model(model: object, manifest: Manifest) -> None:
    for output in manifest.outputs:
        if not callable(getattr(model, output, None)):
            raise ArtifactError(
                f"the loaded {type(model).__name__} has no callable {output}()",
                name=manifest.name,
                version=manifest.version,
            )
    n_features_in: object = getattr(model, "n_features_in_", None)
    if n_features_in is not None and n_features_in != manifest.n_features:
        raise ArtifactError(
            f"the model expects {n_features_in} features but the manifest says "
            f"{manifest.n_features}",
            name=manifest.name,
            version=manifest.version,
        )


def _write_synced(path: Path, data: bytes) -> None:
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; without it a crash can lose a version that was reported
    # as registered. Best effort: the version is already visible, so failing now would report
    # a registered version as not registered (and some filesystems refuse fsync on a directory).
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class ModelStore:
    """A directory of named, versioned scikit-learn artifacts with their manifests.

    Args:
        root: The store's directory; it need not exist until something is registered.
        trusted_types: Dotted type names a skops artifact may hold on top of skops' defaults
            and :data:`~service.store.artifacts.SKLEARN_MODEL_TYPES` (a user's own transformer
            classes); they are trusted for loading and for registering.
        allow_pickle: Load joblib (pickle) versions, with one warning each; when false they are
            refused before their artifact is read.
    """

    def __init__(
        self, root: Path, *, trusted_types: Iterable[str] = (), allow_pickle: bool = True
    ) -> None:
        self._root = Path(root)
        self._trusted_types = tuple(trusted_types)
        self._allow_pickle = allow_pickle
        # Versions warned about as pickles; set.add is atomic, so threads may share it.
        self._pickle_warned: set[tuple[str, int]] = set()

    def __repr__(self) -> str:
        return f"ModelStore({str(self._root)!r})"

    @property
    def root(self) -> Path:
        """The store's directory."""
        return self._root

    def names(self) -> list[str]:
        """Return the model names in the store, sorted; [] if the root does not exist.

        Only directories whose name is a valid model name count, so files, hidden entries and
        stray directories are ignored.

        Raises:
            StoreLayoutError: If the root exists but cannot be listed (e.g. it is a file).
        """
        return sorted(
            entry.name
            for entry in self._entries(self._root)
            if NAME_PATTERN.fullmatch(entry.name) and entry.is_dir()
        )

    def versions(self, name: str) -> list[int]:
        """Return the versions of ``name`` in ascending order; [] if it has none.

        Only directories named as a positive integer without leading zeros count; temp
        directories of unfinished registrations and anything else are skipped. The versions
        are not verified: call :meth:`verify` or :meth:`load` for that.

        Raises:
            StoreLayoutError: If ``name`` is not a valid model name or its path is not a directory.
        """
        model_dir = self._model_dir(name)
        return sorted(
            int(entry.name)
            for entry in self._entries(model_dir, name=name)
            if _VERSION_DIR.fullmatch(entry.name) and entry.is_dir()
        )

    def read_manifest(self, name: str, version: int) -> Manifest:
        """Read and validate the manifest of one version.

        Raises:
            ManifestError: If it is missing, unreadable or invalid, or its name or version differ
                from the directory it is in.
            StoreLayoutError: If ``name`` or ``version`` is not valid.
        """
        path = self._version_dir(name, version) / MANIFEST_FILE
        data = _read(path, ManifestError, "manifest", name, version)
        try:
            manifest = Manifest.from_json(data, source=str(path))
        except ManifestError as err:
            if (err.name, err.version) == (name, version):
                raise
            # The directory, not the file's content, is what callers asked about.
            raise ManifestError(err.detail, name=name, version=version) from err
        if (manifest.name, manifest.version) != (name, version):
            raise ManifestError(
                f"manifest {path} is for model '{manifest.name}' version {manifest.version}",
                name=name,
                version=version,
            )
        return manifest

    def verify(self, name: str, version: int) -> Manifest:
        """Check one version as :meth:`load` would, without building its model.

        That is: the manifest, the pickle policy (before the artifact is read), the checksum,
        the scikit-learn version and, for skops, that every type it names is trusted.

        Raises:
            ManifestError: If the manifest is missing or invalid.
            PickleNotAllowedError: If it is a joblib version and pickles are not allowed.
            ArtifactError: If the artifact is missing or unreadable (or not a skops file).
            ChecksumMismatchError: If the artifact's sha256 differs from the manifest's.
            VersionMismatchError: If the manifest names another scikit-learn version.
            UntrustedArtifactError: If a skops artifact names a type that is not trusted.
        """
        manifest, data = self._read_verified(
            name, version, allow_version_mismatch=False, allow_pickle=self._allow_pickle
        )
        if manifest.format == "skops":
            refused = artifacts.untrusted_types(
                data, self._trusted_types, name=name, version=version
            )
            if refused:
                raise artifacts.untrusted_error(refused, name=name, version=version)
        return manifest

    def load(
        self, name: str, version: int, *, allow_version_mismatch: bool = False
    ) -> LoadedArtifact:
        """Verify and load one version.

        The artifact is read once; the bytes whose sha256 was checked are the bytes loaded. A
        skops artifact is audited first and refused if it names a type that is not trusted; a
        joblib one is refused unread when pickles are not allowed, else loaded with a warning
        (once per version) saying how to convert it.

        Args:
            name: The model's name.
            version: The version to load.
            allow_version_mismatch: Load an artifact made with another scikit-learn version
                (by its manifest or by scikit-learn's ``InconsistentVersionWarning``) instead of
                refusing it; the result then has ``version_mismatch=True``.

        Raises:
            ManifestError: If the manifest is missing or invalid.
            PickleNotAllowedError: If it is a joblib version and pickles are not allowed.
            ChecksumMismatchError: If the artifact's sha256 differs from the manifest's.
            VersionMismatchError: If the artifact was made with another scikit-learn version and
                ``allow_version_mismatch`` is false.
            UntrustedArtifactError: If a skops artifact names a type that is not trusted.
            ArtifactError: If the artifact is missing or does not load into a model with the
                manifest's outputs and number of features.
        """
        manifest, data = self._read_verified(
            name,
            version,
            allow_version_mismatch=allow_version_mismatch,
            allow_pickle=self._allow_pickle,
        )
        mismatch = manifest.framework_version != sklearn.__version__
        if manifest.format == "joblib" and (name, version) not in self._pickle_warned:
            self._pickle_warned.add((name, version))
            log.warning(
                "model %s version %d is a joblib pickle, which runs code when loaded; rewrite it "
                "as skops with `python -m service convert --model-store %s`",
                name,
                version,
                self._root,
            )
        model, pickled_version = artifacts.load(
            data, manifest.format, trusted=self._trusted_types, name=name, version=version
        )
        if pickled_version is not None:
            # The manifest may be wrong about the version; scikit-learn's own check is the truth.
            if not allow_version_mismatch:
                raise VersionMismatchError(
                    name=name,
                    version=version,
                    artifact_version=pickled_version,
                    running_version=sklearn.__version__,
                )
            mismatch = True
        _check_model(model, manifest)
        return LoadedArtifact(manifest=manifest, model=model, version_mismatch=mismatch)

    def register(
        self,
        artifact: Path,
        name: str,
        *,
        feature_names: Sequence[str] | None = None,
        features: FeatureSchema | None = None,
        example: pd.DataFrame | None = None,
    ) -> Manifest:
        """Add a joblib or skops file as the next version of ``name``, as skops, atomically.

        A joblib file is unpickled (so register only files you trust: this runs their code),
        written as skops and checked to predict the same on probe rows; a skops file is audited
        and stored as it is. The new version appears under its final name complete or not at
        all; if another writer takes the same number first, the next free number is used.

        Args:
            artifact: Path of the joblib or skops file (told apart by content, not name).
            name: The model's name; created if new.
            feature_names: Names of the input columns (see :meth:`Manifest.describe`).
            features: The typed input columns, declared; else they are inferred from the
                model (see :func:`~service.store.schema.infer_schema`).
            example: Rows of the table the model takes, to infer the column types from.

        Returns:
            The manifest written, whose ``version`` is the number assigned.

        Raises:
            StoreLayoutError: If ``name`` is not valid or the version cannot be written.
            UntrustedArtifactError: If the model holds types that are not trusted (named).
            ArtifactError: If the file is missing or does not load, the model has no
                ``predict``, is not fitted, cannot be written as skops or predicts otherwise
                once it is.
            VersionMismatchError: If it was made with another scikit-learn version.
            ManifestError: If ``feature_names`` does not match the model's number of features.
            FeatureSchemaError: If the model's input columns cannot be typed, or ``features``
                or ``example`` do not fit its columns.
        """
        self._check_name(name)
        try:
            data = Path(artifact).read_bytes()
        except OSError as err:
            raise ArtifactError(f"cannot read {artifact}: {err}", name=name) from err
        source_format = artifacts.format_of(data)
        model = self._loaded_for_writing(data, source_format, name)
        if source_format == "skops":
            return self._add(
                data,
                model,
                name,
                feature_names=feature_names,
                features=features,
                example=example,
                format="skops",
            )
        return self.save(
            model, name, feature_names=feature_names, features=features, example=example
        )

    def save(
        self,
        model: object,
        name: str,
        *,
        feature_names: Sequence[str] | None = None,
        features: FeatureSchema | None = None,
        example: pd.DataFrame | None = None,
        format: ArtifactFormat = "skops",
    ) -> Manifest:
        """Write a fitted model as ``format`` and register it as the next version of ``name``.

        As skops, the written bytes are loaded back with the store's trust list and checked to
        predict as ``model`` does on probe rows. ``format="joblib"`` writes a pickle, for test
        doubles and for tools that read the store with ``joblib.load``.

        Raises the same errors as :meth:`register`.
        """
        self._check_name(name)
        if not callable(getattr(model, "predict", None)):
            raise ArtifactError(
                f"the artifact holds a {type(model).__name__}, which has no predict()", name=name
            )
        data = artifacts.dump(model, format, name=name)
        stored = self._loaded_for_writing(data, format, name)
        return self._add(
            data,
            stored,
            name,
            feature_names=feature_names,
            features=features,
            example=example,
            format=format,
            check=model,
        )

    def convert(self, name: str, version: int) -> Manifest | None:
        """Rewrite a joblib version as skops in place; None if it already is skops.

        The pickle is loaded (so convert only stores you trust: this runs their code), written
        as skops, loaded back with the store's trust list and checked to predict the same on
        probe rows before anything is replaced. Then ``model.skops`` is written and the manifest
        replaced by rename, the manifest being the switch: a reader sees the old version or the
        new one, never a mix; ``model.joblib`` is removed last.

        Raises:
            ManifestError, ChecksumMismatchError, VersionMismatchError: As :meth:`verify`.
            UntrustedArtifactError: If the model holds types that are not trusted (named).
            ArtifactError: If it does not load, cannot be written as skops or predicts
                otherwise once it is; nothing was changed.
            StoreLayoutError: If the new files cannot be written.
        """
        manifest = self.read_manifest(name, version)
        if manifest.format == "skops":
            return None
        manifest, data = self._read_verified(
            name, version, allow_version_mismatch=False, allow_pickle=True
        )
        original = self._loaded_for_writing(data, "joblib", name, version)
        _check_model(original, manifest)
        converted_data = artifacts.dump(original, "skops", name=name)
        converted, _ = artifacts.load(
            converted_data, "skops", trusted=self._trusted_types, name=name, version=version
        )
        converted_manifest = replace(
            manifest, artifact=SKOPS_FILE, sha256=_sha256(converted_data), format="skops"
        )
        _check_model(converted, converted_manifest)
        artifacts.check_same_predictions(original, converted, converted_manifest)
        self._replace_version(converted_data, converted_manifest, old_artifact=manifest.artifact)
        return converted_manifest

    def _loaded_for_writing(
        self, data: bytes, format: ArtifactFormat, name: str, version: int | None = None
    ) -> Any:
        """The model in ``data``, refused if it was made with another scikit-learn version."""
        model, pickled_version = artifacts.load(
            data, format, trusted=self._trusted_types, name=name, version=version
        )
        if pickled_version is not None:
            # Writing it would record a manifest claiming the running version.
            raise VersionMismatchError(
                name=name,
                version=version,
                artifact_version=pickled_version,
                running_version=sklearn.__version__,
            )
        if not callable(getattr(model, "predict", None)):
            raise ArtifactError(
                f"the artifact holds a {type(model).__name__}, which has no predict()", name=name
            )
        return model

    def _add(
        self,
        data: bytes,
        model: Any,
        name: str,
        *,
        feature_names: Sequence[str] | None,
        features: FeatureSchema | None,
        example: pd.DataFrame | None,
        format: ArtifactFormat,
        check: object | None = None,
    ) -> Manifest:
        """Publish ``data`` (which loads as ``model``) as the next version of ``name``.

        ``check``: the in-memory model ``data`` was written from, when the format changed on the
        way (skops from an object), so that the stored model must predict as it does.
        """
        features = infer_schema(model, example=example, declared=features, name=name)
        manifest = Manifest.describe(
            model,
            name=name,
            version=self._next_version(name),
            sha256=_sha256(data),
            feature_names=feature_names,
            created_at=utc_now(),
            format=format,
            features=features,
        )
        _check_model(model, manifest)
        if check is not None and format == "skops":
            artifacts.check_same_predictions(check, model, manifest, example=example)
        model_dir = self._model_dir(name)
        temp_dir = model_dir / f"{_TEMP_PREFIX}{secrets.token_hex(8)}"
        try:
            model_dir.mkdir(parents=True, exist_ok=True)
            # mkdir, not tempfile.mkdtemp: mkdtemp's mode 0o700 would survive the rename and
            # hide the version from a server running as another user.
            temp_dir.mkdir()
            return self._publish(temp_dir, data, manifest)
        except OSError as err:
            raise StoreLayoutError(
                f"cannot write a new version under {model_dir}: {err}", name=name
            ) from err
        finally:
            # After a successful rename there is nothing left to remove.
            shutil.rmtree(temp_dir, ignore_errors=True)

    def _publish(self, temp_dir: Path, data: bytes, manifest: Manifest) -> Manifest:
        """Fill ``temp_dir`` and rename it to the manifest's version, or the next free one."""
        model_dir = temp_dir.parent
        _write_synced(temp_dir / manifest.artifact, data)
        for _ in range(_MAX_REGISTER_ATTEMPTS):
            _write_synced(temp_dir / MANIFEST_FILE, manifest.to_json())
            try:
                # rename(2) is atomic, and it fails rather than merge into a non-empty directory.
                temp_dir.rename(model_dir / str(manifest.version))
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise
                # Another writer took this number between listing and renaming (or a stray
                # file squats on it, which versions() does not list).
                version = max(manifest.version + 1, self._next_version(manifest.name))
                manifest = replace(manifest, version=version)
                continue
            _fsync_dir(model_dir)
            return manifest
        raise StoreLayoutError(
            f"gave up after {_MAX_REGISTER_ATTEMPTS} version numbers were taken by other writers",
            name=manifest.name,
        )

    def _replace_version(self, data: bytes, manifest: Manifest, *, old_artifact: str) -> None:
        """Swap a version's artifact for ``data`` and its manifest for ``manifest``, in place."""
        version_dir = self._version_dir(manifest.name, manifest.version)
        token = secrets.token_hex(8)
        temp_artifact = version_dir / f"{_TEMP_PREFIX}{token}-{manifest.artifact}"
        temp_manifest = version_dir / f"{_TEMP_PREFIX}{token}-{MANIFEST_FILE}"
        try:
            _write_synced(temp_artifact, data)
            temp_artifact.replace(version_dir / manifest.artifact)
            _write_synced(temp_manifest, manifest.to_json())
            # The switch: until this rename the old manifest names the old, untouched artifact.
            temp_manifest.replace(version_dir / MANIFEST_FILE)
            _fsync_dir(version_dir)
            if old_artifact != manifest.artifact:
                (version_dir / old_artifact).unlink(missing_ok=True)
                _fsync_dir(version_dir)
        except OSError as err:
            raise StoreLayoutError(
                f"cannot rewrite {version_dir}: {err}", name=manifest.name, version=manifest.version
            ) from err
        finally:
            temp_artifact.unlink(missing_ok=True)
            temp_manifest.unlink(missing_ok=True)

    def _next_version(self, name: str) -> int:
        existing = self.versions(name)
        return existing[-1] + 1 if existing else 1

    def _check_name(self, name: str) -> None:
        if NAME_PATTERN.fullmatch(name) is None:
            raise StoreLayoutError(
                f"invalid model name {name!r}: it must match {NAME_PATTERN.pattern}"
            )

    def _model_dir(self, name: str) -> Path:
        self._check_name(name)
        return self._root / name

    def _version_dir(self, name: str, version: int) -> Path:
        model_dir = self._model_dir(name)
        if not _is_version(version):
            raise StoreLayoutError(
                f"invalid version {version!r}: it must be a positive integer", name=name
            )
        return model_dir / str(version)

    def _entries(self, directory: Path, *, name: str | None = None) -> list[os.DirEntry[str]]:
        try:
            with os.scandir(directory) as entries:
                return list(entries)
        except FileNotFoundError:
            return []
        except OSError as err:
            raise StoreLayoutError(f"cannot list {directory}: {err}", name=name) from err

    def _read_verified(
        self, name: str, version: int, *, allow_version_mismatch: bool, allow_pickle: bool
    ) -> tuple[Manifest, bytes]:
        manifest = self.read_manifest(name, version)
        if manifest.format == "joblib" and not allow_pickle:
            # Refused on the manifest's word alone: not one byte of a pickle is read.
            raise PickleNotAllowedError(
                "the artifact is a joblib pickle, which runs code when loaded, and pickles are "
                "not allowed (PREDICTION_ALLOW_PICKLE=false); rewrite it as skops with "
                "`python -m service convert`",
                name=name,
                version=version,
            )
        path = self._version_dir(name, version) / manifest.artifact
        data = _read(path, ArtifactError, "artifact", name, version)
        actual = _sha256(data)
        if actual != manifest.sha256:
            raise ChecksumMismatchError(
                name=name, version=version, expected=manifest.sha256, actual=actual
            )
        if manifest.framework_version != sklearn.__version__ and not allow_version_mismatch:
            # Refused before unpickling: an old pickle may not even load, or load subtly wrong.
            raise VersionMismatchError(
                name=name,
                version=version,
                artifact_version=manifest.framework_version,
                running_version=sklearn.__version__,
            )
        return manifest, data


def _read(
    path: Path,
    error: type[ManifestError | ArtifactError],
    what: str,
    name: str,
    version: int,
) -> bytes:
    """The bytes of ``path``, or ``error`` saying it is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"{what} {path} is missing", name=name, version=version) from None
    except OSError as err:
        raise error(f"{what} {path} cannot be read: {err}", name=name, version=version) from err
