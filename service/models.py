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
from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Literal
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from service.batching import BatchObserver
from service.batching import MicroBatcher
from service.engines import select_engine
from service.errors import InvalidInputError
from service.errors import ModelNotFoundError
from service.settings import Settings
from service.store import ARTIFACT_FILE
from service.store import MANIFEST_FILE
from service.store import ChecksumMismatchError
from service.store import LoadedArtifact
from service.store import Manifest
from service.store import ModelStore
from service.store import StoreError
from service.store import VersionMismatchError

__all__ = [
    "IndexEntry",
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
    engine: str = "sklearn"
    """What answers its calls: ``trees`` (the exact tree engine) or ``sklearn``."""

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


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One version on disk or in memory, as the repository index reports it."""

    name: str
    version: int
    state: Literal["READY", "UNAVAILABLE"]
    reason: str = ""


# What a version's files looked like when it was refused: it is retried only once they change.
_Fingerprint = tuple[tuple[int, int] | None, tuple[int, int] | None]


class ModelRegistry:
    """Serves the newest valid versions of every model in the store and resolves requests to them.

    The set of served versions is an immutable mapping replaced in one assignment on the event
    loop, so a request sees either the old set or the new one. Routes resolve a version and queue
    their rows on its batcher without awaiting in between, so a version that is retired right
    after finishes every request it accepted (its batchers drain before they close).

    Args:
        store: where artifacts and manifests live.
        settings: batching limits, default model, version-mismatch policy, grace period.
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
        self._models: Mapping[str, tuple[ServedVersion, ...]] = {}
        self._refused: dict[tuple[str, int], tuple[_Fingerprint, str]] = {}
        # Models unloaded through the repository API; polling leaves them unloaded.
        self._unloaded: set[str] = set()
        self._refresh_lock = asyncio.Lock()
        self._reload_now = asyncio.Event()
        self._retiring: set[asyncio.Task[None]] = set()
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

    def index(self) -> list[IndexEntry]:
        """Every served version (READY) and every refused one (UNAVAILABLE, with the reason)."""
        entries = [
            IndexEntry(name, served.version, "READY")
            for name, versions in self._models.items()
            for served in versions
        ]
        served_keys = {(entry.name, entry.version) for entry in entries}
        entries.extend(
            IndexEntry(name, version, "UNAVAILABLE", reason)
            for (name, version), (_, reason) in self._refused.items()
            if (name, version) not in served_keys
        )
        return sorted(entries, key=lambda entry: (entry.name, -entry.version))

    async def start(self) -> None:
        """Load, verify and warm the models off the event loop, then start their batchers."""
        await self.refresh()
        self._loaded = True

    async def refresh(self, names: Collection[str] | None = None) -> None:
        """Bring the served versions in line with the store (all models, or only ``names``).

        New valid versions are loaded, verified and warmed off the event loop, then swapped in
        at once; versions that fell out of the newest two, or left the store, are retired.
        """
        async with self._refresh_lock:
            current = self._models
            planned = await asyncio.to_thread(self._plan, current, names)
            self._swap(current, planned)

    async def load_model(self, name: str) -> None:
        """Load ``name``'s newest valid versions now, even if it was unloaded or refused before.

        Raises:
            ModelNotFoundError: the store has no valid version of ``name``.
        """
        self._unloaded.discard(name)
        for key in [key for key in self._refused if key[0] == name]:
            del self._refused[key]
        await self.refresh([name])
        if name not in self._models:
            raise ModelNotFoundError(name)

    async def unload_model(self, name: str) -> None:
        """Stop serving ``name`` (after its accepted requests finish) until it is loaded again.

        Raises:
            ModelNotFoundError: ``name`` is not being served.
        """
        async with self._refresh_lock:
            if name not in self._models:
                raise ModelNotFoundError(name)
            self._unloaded.add(name)
            current = self._models
            self._swap(current, {key: value for key, value in current.items() if key != name})

    def request_reload(self) -> None:
        """Make the poller re-read the store at once (SIGHUP)."""
        self._reload_now.set()

    async def poll(self, interval_s: float) -> None:
        """Re-read the store every ``interval_s`` seconds (at once when asked) until cancelled."""
        while True:
            try:
                async with asyncio.timeout(interval_s):
                    await self._reload_now.wait()
            except TimeoutError:
                pass
            self._reload_now.clear()
            try:
                await self.refresh()
            except Exception:
                # The poller must outlive any one bad read of the store.
                log.exception("refreshing the model store failed; serving what was loaded")

    async def aclose(self, timeout_s: float | None = None) -> None:
        """Stop intake on every batcher and let accepted work finish (bounded by ``timeout_s``)."""
        closing = [
            batcher.aclose(timeout_s)
            for versions in self._models.values()
            for served in versions
            for batcher in served.batchers.values()
        ]
        await asyncio.gather(*closing, *self._retiring)

    def _plan(
        self, current: Mapping[str, tuple[ServedVersion, ...]], names: Collection[str] | None
    ) -> dict[str, tuple[ServedVersion, ...]]:
        """The versions to serve next; loads (and warms) the new ones. Runs in a worker thread."""
        planned = dict(current)
        try:
            on_disk = set(self._store.names())
        except (StoreError, OSError) as error:
            log.warning("cannot list the model store: %s", error)
            return planned
        targets = set(names) if names is not None else (on_disk | set(current)) - self._unloaded
        for name in targets:
            if name not in on_disk:
                planned.pop(name, None)
                continue
            chosen = self._choose(
                name, {served.version: served for served in current.get(name, ())}
            )
            if chosen is None:
                continue
            if chosen:
                planned[name] = chosen
            else:
                planned.pop(name, None)
        return planned

    def _choose(
        self, name: str, loaded: dict[int, ServedVersion]
    ) -> tuple[ServedVersion, ...] | None:
        """The newest valid versions of ``name``, reusing loaded ones; None if unreadable."""
        try:
            versions = self._store.versions(name)
        except (StoreError, OSError) as error:
            log.warning("cannot list versions of model %s: %s", name, error)
            return None
        chosen: list[ServedVersion] = []
        for version in reversed(versions):
            served = loaded.get(version)
            if served is None:
                fingerprint = self._fingerprint(name, version)
                refused = self._refused.get((name, version))
                if refused is not None and refused[0] == fingerprint:
                    continue
                served = self._load_version(name, version, fingerprint)
                if served is None:
                    continue
            chosen.append(served)
            if len(chosen) == VERSIONS_KEPT:
                break
        return tuple(chosen)

    def _swap(
        self,
        current: Mapping[str, tuple[ServedVersion, ...]],
        planned: Mapping[str, tuple[ServedVersion, ...]],
    ) -> None:
        """Start the new versions, publish ``planned`` in one assignment, retire the rest."""
        before = {id(served): served for versions in current.values() for served in versions}
        after = {id(served): served for versions in planned.values() for served in versions}
        for key, served in after.items():
            if key not in before:
                for batcher in served.batchers.values():
                    batcher.start()
                if self._listener is not None:
                    self._listener.version_served(served)
        self._models = planned
        for key, served in before.items():
            if key not in after:
                task = asyncio.create_task(self._retire(served))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)

    async def _retire(self, served: ServedVersion) -> None:
        if self._listener is not None:
            self._listener.version_retired(served)
        await asyncio.gather(
            *(
                batcher.aclose(self._settings.graceful_timeout_s)
                for batcher in served.batchers.values()
            )
        )
        log.info("unloaded model %s version %d", served.name, served.version)

    def _fingerprint(self, name: str, version: int) -> _Fingerprint:
        directory = self._store.root / name / str(version)

        def stat(path: Path) -> tuple[int, int] | None:
            try:
                result = path.stat()
            except OSError:
                return None
            return (result.st_mtime_ns, result.st_size)

        return (stat(directory / MANIFEST_FILE), stat(directory / ARTIFACT_FILE))

    def _load_version(
        self, name: str, version: int, fingerprint: _Fingerprint
    ) -> ServedVersion | None:
        try:
            artifact = self._store.load(
                name, version, allow_version_mismatch=self._settings.allow_version_mismatch
            )
        except (StoreError, OSError) as error:
            outcome = _outcome(error)
            # The index shows reasons to API clients: paths relative to the store, not the disk.
            reason = str(error).replace(f"{self._store.root}/", "")
            self._refused[(name, version)] = (fingerprint, reason)
            self._report(LoadEvent(name, version, outcome, str(error)))
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
        self._refused.pop((name, version), None)
        served = self._serve(artifact)
        self._report(LoadEvent(name, version, "ok"))
        log.info("loaded model %s version %d", name, version)
        return served

    def _serve(self, artifact: LoadedArtifact) -> ServedVersion:
        manifest = artifact.manifest
        model = artifact.model
        _warm(model, manifest)
        engine = select_engine(model, manifest, self._settings)
        batchers: dict[Output, MicroBatcher] = {}
        for output in OUTPUTS:
            if output not in manifest.outputs:
                continue
            observer = self._observer_factory(manifest, output) if self._observer_factory else None
            batchers[output] = MicroBatcher(
                engine.outputs[output],
                max_batch_rows=self._settings.max_batch_rows,
                max_queue_rows=self._settings.max_queue_rows,
                max_wait_s=self._settings.max_wait_s,
                max_concurrent_batches=self._settings.max_concurrent_batches,
                observer=observer,
                name=f"{manifest.name}/{manifest.version}/{output}",
            )
        return ServedVersion(manifest, model, batchers, artifact.version_mismatch, engine.name)

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


def _outcome(
    error: StoreError | OSError,
) -> Literal["checksum_mismatch", "version_mismatch", "error"]:
    if isinstance(error, ChecksumMismatchError):
        return "checksum_mismatch"
    if isinstance(error, VersionMismatchError):
        return "version_mismatch"
    return "error"
