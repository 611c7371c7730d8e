"""The models being served: which versions are loaded, their batchers, and name resolution.

A :class:`ServedVersion` is one verified, warmed model version with one batcher per output
(``predict`` and, where the model has it, ``predict_proba``), so the two outputs batch
separately and every batch is answered by exactly one version. :class:`ModelRegistry` loads
the newest valid versions from the store and resolves ``(name, version)`` for requests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Literal
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from service.batching import BatchObserver
from service.batching import MicroBatcher
from service.errors import InvalidInputError
from service.errors import ModelNotFoundError
from service.settings import Settings
from service.store import ChecksumMismatchError
from service.store import LoadedArtifact
from service.store import Manifest
from service.store import ModelStore
from service.store import StoreError
from service.store import VersionMismatchError

__all__ = [
    "LoadEvent",
    "ModelRegistry",
    "Output",
    "RegistryListener",
    "ServedVersion",
]

log = logging.getLogger(__name__)

Output = Literal["predict", "predict_proba"]
OUTPUTS: tuple[Output, ...] = ("predict", "predict_proba")

# How many of a model's newest valid versions stay loaded and addressable.
VERSIONS_KEPT = 2

ObserverFactory = Callable[[Manifest, Output], BatchObserver | None]
"""Builds the observer of one (version, output) batcher; the metrics module provides it."""


class RegistryListener(Protocol):
    """What the registry reports about loading and serving; the metrics module implements it."""

    def load_attempted(self, event: LoadEvent) -> None:
        """A version was loaded or refused."""

    def version_served(self, served: ServedVersion) -> None:
        """A version started answering requests."""

    def version_retired(self, served: ServedVersion) -> None:
        """A version stopped answering requests."""


@dataclass(frozen=True, slots=True)
class LoadEvent:
    """The outcome of trying to load one version, for logs and metrics."""

    name: str
    version: int
    outcome: Literal["ok", "checksum_mismatch", "version_mismatch", "error"]
    detail: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class ServedVersion:
    """One loaded, verified and warmed model version, with a batcher per output."""

    manifest: Manifest
    model: Any
    batchers: Mapping[Output, MicroBatcher]
    version_mismatch: bool = False

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    async def infer(
        self, output: Output, rows: NDArray[np.float64], *, timeout_s: float | None
    ) -> NDArray[Any]:
        """Queue ``rows`` on this version's batcher for ``output`` and await their results.

        Raises:
            InvalidInputError: the model has no such output.
            ServiceError: whatever the batcher raises (overload, deadline, model errors).
        """
        batcher = self.batchers.get(output)
        if batcher is None:
            raise InvalidInputError(f"Model '{self.name}' has no output '{output}'.")
        return await batcher.submit(rows, timeout_s=timeout_s)


class ModelRegistry:
    """Loads the newest valid versions of every model in the store and resolves requests to them.

    Args:
        store: where artifacts and manifests live.
        settings: batching limits, default model, version-mismatch policy.
        observer_factory: builds each batcher's observer (metrics); ``None`` for no reporting.
        listener: told of every load attempt and of versions starting and stopping serving.
    """

    def __init__(
        self,
        store: ModelStore,
        settings: Settings,
        *,
        observer_factory: ObserverFactory | None = None,
        listener: RegistryListener | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._observer_factory = observer_factory
        self._listener = listener
        # name -> versions, newest first; replaced wholesale so readers never see a half update.
        self._models: dict[str, tuple[ServedVersion, ...]] = {}
        self._loaded = False

    @property
    def ready(self) -> bool:
        """True once the first load finished with at least one model being served."""
        return self._loaded and bool(self._models)

    def models(self) -> dict[str, tuple[ServedVersion, ...]]:
        """A snapshot: model name -> its served versions, newest first."""
        return dict(self._models)

    def resolve(self, name: str | None, version: int | None = None) -> ServedVersion:
        """The served version a request asks for; the newest one when ``version`` is None.

        Raises:
            ModelNotFoundError: no such model, or that version is not loaded.
            InvalidInputError: no name given and no default model can be chosen.
        """
        if name is None:
            name = self._default_name()
        versions = self._models.get(name)
        if not versions:
            raise ModelNotFoundError(name)
        if version is None:
            return versions[0]
        for served in versions:
            if served.version == version:
                return served
        raise ModelNotFoundError(name, version)

    def _default_name(self) -> str:
        if self._settings.default_model is not None:
            return self._settings.default_model
        if len(self._models) == 1:
            return next(iter(self._models))
        names = ", ".join(sorted(self._models)) or "none"
        raise InvalidInputError(
            f"Name a model with the 'model' query parameter; loaded models: {names}."
        )

    async def start(self) -> None:
        """Load, verify and warm the models off the event loop, then start their batchers."""
        loaded = await asyncio.to_thread(self._load_all)
        for versions in loaded.values():
            for served in versions:
                for batcher in served.batchers.values():
                    batcher.start()
                if self._listener is not None:
                    self._listener.version_served(served)
        self._models = loaded
        self._loaded = True

    async def aclose(self, timeout_s: float | None = None) -> None:
        """Stop intake on every batcher and let accepted work finish (bounded by ``timeout_s``)."""
        closing = [
            batcher.aclose(timeout_s)
            for versions in self._models.values()
            for served in versions
            for batcher in served.batchers.values()
        ]
        await asyncio.gather(*closing)

    def _load_all(self) -> dict[str, tuple[ServedVersion, ...]]:
        loaded: dict[str, tuple[ServedVersion, ...]] = {}
        for name in self._store.names():
            served: list[ServedVersion] = []
            for version in reversed(self._store.versions(name)):
                result = self._load_version(name, version)
                if result is not None:
                    served.append(result)
                if len(served) == VERSIONS_KEPT:
                    break
            if served:
                loaded[name] = tuple(served)
        return loaded

    def _load_version(self, name: str, version: int) -> ServedVersion | None:
        try:
            artifact = self._store.load(
                name, version, allow_version_mismatch=self._settings.allow_version_mismatch
            )
        except StoreError as error:
            self._report(LoadEvent(name, version, _outcome(error), str(error)))
            log.warning("refused model %s version %d: %s", name, version, error)
            return None
        if artifact.version_mismatch:
            log.warning(
                "model %s version %d was made with scikit-learn %s; loaded anyway because "
                "PREDICTION_ALLOW_VERSION_MISMATCH is set",
                name,
                version,
                artifact.manifest.framework_version,
            )
        served = self._serve(artifact)
        self._report(LoadEvent(name, version, "ok"))
        log.info("loaded model %s version %d", name, version)
        return served

    def _serve(self, artifact: LoadedArtifact) -> ServedVersion:
        manifest = artifact.manifest
        model = artifact.model
        _warm(model, manifest)
        batchers: dict[Output, MicroBatcher] = {}
        for output in OUTPUTS:
            if output not in manifest.outputs:
                continue
            observer = self._observer_factory(manifest, output) if self._observer_factory else None
            batchers[output] = MicroBatcher(
                getattr(model, output),
                max_batch_rows=self._settings.max_batch_rows,
                max_queue_rows=self._settings.max_queue_rows,
                max_wait_s=self._settings.max_wait_s,
                max_concurrent_batches=self._settings.max_concurrent_batches,
                observer=observer,
                name=f"{manifest.name}/{manifest.version}/{output}",
            )
        return ServedVersion(manifest, model, batchers, artifact.version_mismatch)

    def _report(self, event: LoadEvent) -> None:
        if self._listener is not None:
            self._listener.load_attempted(event)


def _warm(model: Any, manifest: Manifest) -> None:
    """Run each output once so the first real request pays no first-call costs."""
    sample = np.zeros((1, manifest.n_features), dtype=np.float64)
    for output in manifest.outputs:
        try:
            getattr(model, output)(sample)
        except Exception:
            # A model may reject all-zero rows (e.g. unknown categories); it still serves.
            log.info("warm-up of %s/%d %s skipped", manifest.name, manifest.version, output)


def _outcome(error: StoreError) -> Literal["checksum_mismatch", "version_mismatch", "error"]:
    if isinstance(error, ChecksumMismatchError):
        return "checksum_mismatch"
    if isinstance(error, VersionMismatchError):
        return "version_mismatch"
    return "error"
