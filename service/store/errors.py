"""Errors of the model store: reading, verifying, loading and registering versions.

The store is the bottom layer, so these carry no HTTP status and are never shown to a client as
such; callers log them, count them and keep serving what they had. The tree::

    StoreError                  base; ``str(error)`` is one line naming the model and version
    ├── ManifestError           model.json missing, unreadable, not JSON, or a field is missing,
    │                           ill-typed or disagrees with the version's directory
    ├── ChecksumMismatchError   the artifact's bytes do not hash to the manifest's sha256
    ├── VersionMismatchError    the artifact was made with another scikit-learn than the running one
    ├── ArtifactError           the artifact is missing, unreadable, does not unpickle, has no
    │                           ``predict`` or expects another number of features
    ├── FeatureSchemaError      a model's input columns cannot be typed, or the example table or
    │                           schema given for them is unreadable or does not fit the model
    ├── UntrustedArtifactError  the artifact holds types outside the trust list (or skops cannot
    │   │                       represent them), so it is refused before any of it runs
    │   └── PickleNotAllowedError  a joblib (pickle) version while pickles are not allowed
    └── StoreLayoutError        a bad model name, a path that is not a directory, a failed write
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "ChecksumMismatchError",
    "FeatureSchemaError",
    "ManifestError",
    "PickleNotAllowedError",
    "StoreError",
    "StoreLayoutError",
    "UntrustedArtifactError",
    "VersionMismatchError",
]


def _one_line(text: str) -> str:
    # Messages embed str() of foreign exceptions, which may span lines; logs want one line each.
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _format(detail: str, name: str | None, version: int | None) -> str:
    detail = _one_line(detail)
    if name is None:
        return detail[:1].upper() + detail[1:]
    if version is None:
        return f"Model '{name}': {detail}"
    return f"Model '{name}' version {version}: {detail}"


class StoreError(Exception):
    """Base of every store error; ``name`` and ``version`` say which model it is about.

    Args:
        detail: What is wrong, without the model's name and version (they are prefixed).
        name: The model's name, when known.
        version: The model's version, when known.
    """

    def __init__(self, detail: str, *, name: str | None = None, version: int | None = None) -> None:
        self.detail = detail
        self.name = name
        self.version = version
        super().__init__(_format(detail, name, version))


class ManifestError(StoreError):
    """Raised when a version's manifest is missing, unreadable, not JSON or has a bad field."""


class ChecksumMismatchError(StoreError):
    """Raised when the sha256 of an artifact's bytes differs from the one in its manifest."""

    def __init__(self, *, name: str, version: int | None, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"the artifact's sha256 is {actual} but the manifest says {expected}",
            name=name,
            version=version,
        )


class VersionMismatchError(StoreError):
    """Raised when an artifact was made with another scikit-learn version than the running one."""

    def __init__(
        self, *, name: str, version: int | None, artifact_version: str, running_version: str
    ) -> None:
        self.artifact_version = artifact_version
        self.running_version = running_version
        super().__init__(
            f"the artifact was made with scikit-learn {artifact_version} "
            f"but {running_version} is running",
            name=name,
            version=version,
        )


class ArtifactError(StoreError):
    """Raised when an artifact is missing, cannot be unpickled or is not a usable model."""


class FeatureSchemaError(StoreError):
    """Raised when registering a model whose input columns cannot be typed as given."""


class UntrustedArtifactError(StoreError):
    """Raised when an artifact would need types that are not trusted to be loaded or written.

    ``types`` are the dotted names at fault (empty for a refused pickle, whose types cannot be
    known without running it).
    """

    def __init__(
        self,
        detail: str,
        *,
        name: str | None = None,
        version: int | None = None,
        types: tuple[str, ...] = (),
    ) -> None:
        self.types = types
        super().__init__(detail, name=name, version=version)


class PickleNotAllowedError(UntrustedArtifactError):
    """Raised for a joblib (pickle) version when pickles are not allowed; it was not read."""


class StoreLayoutError(StoreError):
    """Raised for an invalid model name, a store path that is not a directory or a failed write."""
