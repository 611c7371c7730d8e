"""The model store: versioned scikit-learn artifacts with manifests, verified before loading.

The bottom layer of the service: it imports nothing from the rest of ``service``, nor Quart,
asyncio or prometheus_client, and its errors are for callers to log and count.
"""

from __future__ import annotations

from service.store.errors import ArtifactError
from service.store.errors import ChecksumMismatchError
from service.store.errors import FeatureSchemaError
from service.store.errors import ManifestError
from service.store.errors import PickleNotAllowedError
from service.store.errors import StoreError
from service.store.errors import StoreLayoutError
from service.store.errors import UntrustedArtifactError
from service.store.errors import VersionMismatchError
from service.store.manifest import ARTIFACT_FILES
from service.store.manifest import OUTPUTS
from service.store.manifest import ArtifactFormat
from service.store.manifest import Manifest
from service.store.manifest import Output
from service.store.manifest import Task
from service.store.store import ARTIFACT_FILE
from service.store.store import MANIFEST_FILE
from service.store.store import SKOPS_FILE
from service.store.store import LoadedArtifact
from service.store.store import ModelStore

__all__ = [
    "ARTIFACT_FILE",
    "ARTIFACT_FILES",
    "MANIFEST_FILE",
    "OUTPUTS",
    "SKOPS_FILE",
    "ArtifactError",
    "ArtifactFormat",
    "ChecksumMismatchError",
    "FeatureSchemaError",
    "LoadedArtifact",
    "Manifest",
    "ManifestError",
    "ModelStore",
    "Output",
    "PickleNotAllowedError",
    "StoreError",
    "StoreLayoutError",
    "Task",
    "UntrustedArtifactError",
    "VersionMismatchError",
]
