"""Turning store versions into served versions: scan, verify, warm, build batchers; off the loop.

:class:`ModelLoader` is synchronous and runs in a worker thread. Given the versions served now, it
scans the store, loads what is new, and returns a :class:`LoadPlan`: an immutable description of
what to serve next, which versions were refused and why, and what happened on the way. It never
starts or stops anything; the registry (``service.models``) publishes the plan on the event loop.

Threads: the loader's own state (the refusal cache, keyed by the files' fingerprints) is only
touched inside :meth:`ModelLoader.plan`, which holds a lock, so one thread at a time uses it even
when a cancelled refresh left its thread running. Everything a plan carries is immutable, apart
from the new versions' batchers, which no thread touches until the registry starts them on the
loop.

``ModelLoader._serve`` is the one place where a loaded artifact becomes a
:class:`ServedVersion`: what every served version gets (warm-up, a batcher per output) is
decided there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from typing import Any
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from service.batching import BatchObserver
from service.batching import MicroBatcher
from service.engines import ENGINE_SKLEARN
from service.engines import Engine
from service.engines import select_engine
from service.engines.inline import LOOP_STALL_BUDGET_S
from service.engines.inline import InlineLimit
from service.engines.inline import bounded
from service.engines.inline import inline_limit
from service.errors import InvalidInputError
from service.settings import Settings
from service.store import ARTIFACT_FILES
from service.store import MANIFEST_FILE
from service.store import OUTPUTS
from service.store import ChecksumMismatchError
from service.store import LoadedArtifact
from service.store import Manifest
from service.store import ModelStore
from service.store import Output
from service.store import StoreError
from service.store import UntrustedArtifactError
from service.store import VersionMismatchError
from service.tables import table_outputs
from service.tables import warm_up_table

if TYPE_CHECKING:  # only a process that traces imports OpenTelemetry (service.tracing)
    from service.tracing import RequestSpan
    from service.tracing import Tracing

__all__ = [
    "VERSIONS_KEPT",
    "LoadEvent",
    "LoadOutcome",
    "LoadPlan",
    "ModelLoader",
    "ObserverFactory",
    "ServedVersion",
]

log = logging.getLogger(__name__)

# How many of a model's newest valid versions stay loaded and addressable.
VERSIONS_KEPT = 2

ObserverFactory = Callable[[Manifest, Output], BatchObserver | None]
"""Builds the observer of one (version, output) batcher; the metrics module provides it."""

Served = Mapping[str, tuple["ServedVersion", ...]]
"""Model name -> its served versions, newest first."""


LoadOutcome = Literal["ok", "checksum_mismatch", "version_mismatch", "untrusted", "error"]
"""How one load attempt ended, as ``prediction_model_loads_total`` counts it."""


@dataclass(frozen=True, slots=True)
class LoadEvent:
    """The outcome of trying to load one version, for logs and metrics."""

    name: str
    version: int
    outcome: LoadOutcome
    detail: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class ServedVersion:
    """One loaded, verified and warmed model version, with a batcher per output."""

    manifest: Manifest
    model: Any
    batchers: Mapping[Output, MicroBatcher]
    version_mismatch: bool = False
    engine: str = "sklearn"
    """What answers its calls: ``trees`` or ``linear`` (the exact engines), or ``sklearn``."""

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    async def infer(
        self,
        output: Output,
        rows: NDArray[Any],
        *,
        timeout_s: float | None,
        span: RequestSpan | None = None,
    ) -> NDArray[Any]:
        """Queue ``rows`` on this version's batcher for ``output`` and await their results.

        ``span`` is the request's server span when tracing (see ``MicroBatcher.submit``).

        ``rows`` is a float64 matrix, or a table model's object table (``service.tables``).

        Raises:
            InvalidInputError: the model has no such output.
            ServiceError: whatever the batcher raises (overload, deadline, model errors).
        """
        batcher = self.batchers.get(output)
        if batcher is None:
            raise InvalidInputError(f"Model '{self.name}' has no output '{output}'.")
        return await batcher.submit(rows, timeout_s=timeout_s, span=span)


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """What to serve next, computed off the loop; published by the registry in one step."""

    models: Served
    """Model name -> the versions to serve, newest first: reused ones and newly loaded ones."""
    refused: Mapping[tuple[str, int], str]
    """(name, version) -> why it was refused, for every refused version still in the store."""
    events: tuple[LoadEvent, ...]
    """The load attempts made for this plan, in order."""


# What a version's files looked like when it was refused: it is retried only once they change.
_Fingerprint = tuple[tuple[int, int] | None, ...]


@dataclass(frozen=True, slots=True)
class _Refusal:
    fingerprint: _Fingerprint
    reason: str


class ModelLoader:
    """Loads, verifies and warms model versions from the store and plans what to serve.

    Args:
        store: where artifacts and manifests live.
        settings: batching limits and the version-mismatch policy.
        observer_factory: builds each batcher's observer (metrics); ``None`` for no reporting.
        tracing: gives each batcher its span tracer; ``None`` when tracing is off.
    """

    def __init__(
        self,
        store: ModelStore,
        settings: Settings,
        *,
        observer_factory: ObserverFactory | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._observer_factory = observer_factory
        self._tracing = tracing
        self._lock = threading.Lock()
        self._refused: dict[tuple[str, int], _Refusal] = {}

    def plan(
        self,
        current: Served,
        *,
        names: Collection[str] | None = None,
        unloaded: Collection[str] = (),
        retry: Collection[str] = (),
    ) -> LoadPlan:
        """What to serve next, loading and warming new versions; it blocks, so run it off the loop.

        Args:
            current: the versions served now; loaded ones are reused, never loaded twice.
            names: the models to bring in line with the store; ``None`` for every model in the
                store or in ``current``, except ``unloaded``.
            unloaded: models unloaded through the API, left out when ``names`` is ``None``.
            retry: models whose refused versions are tried again even if their files did not
                change (an explicit load).
        """
        events: list[LoadEvent] = []
        with self._lock:
            for key in [key for key in self._refused if key[0] in retry]:
                del self._refused[key]
            models = self._plan(current, names, unloaded, events)
            refused = {key: refusal.reason for key, refusal in self._refused.items()}
        return LoadPlan(MappingProxyType(models), MappingProxyType(refused), tuple(events))

    def _plan(
        self,
        current: Served,
        names: Collection[str] | None,
        unloaded: Collection[str],
        events: list[LoadEvent],
    ) -> dict[str, tuple[ServedVersion, ...]]:
        planned = dict(current)
        try:
            on_disk = set(self._store.names())
        except (StoreError, OSError) as error:
            log.warning("cannot list the model store: %s", error)
            return planned
        for key in [key for key in self._refused if key[0] not in on_disk]:
            del self._refused[key]
        targets = set(names) if names is not None else (on_disk | set(current)) - set(unloaded)
        for name in targets:
            if name not in on_disk:
                planned.pop(name, None)
                continue
            loaded = {served.version: served for served in current.get(name, ())}
            chosen = self._choose(name, loaded, events)
            if chosen is None:
                continue
            if chosen:
                planned[name] = chosen
            else:
                planned.pop(name, None)
        return planned

    def _choose(
        self, name: str, loaded: Mapping[int, ServedVersion], events: list[LoadEvent]
    ) -> tuple[ServedVersion, ...] | None:
        """The newest valid versions of ``name``, reusing loaded ones; None if unreadable."""
        try:
            versions = self._store.versions(name)
        except (StoreError, OSError) as error:
            log.warning("cannot list versions of model %s: %s", name, error)
            return None
        present = set(versions)
        for key in [key for key in self._refused if key[0] == name and key[1] not in present]:
            del self._refused[key]
        chosen: list[ServedVersion] = []
        for version in reversed(versions):
            served = loaded.get(version)
            if served is None:
                served = self._load(name, version, events)
                if served is None:
                    continue
            chosen.append(served)
            if len(chosen) == VERSIONS_KEPT:
                break
        return tuple(chosen)

    def _load(self, name: str, version: int, events: list[LoadEvent]) -> ServedVersion | None:
        """Load one version not served yet; None when it is (or already was) refused."""
        fingerprint = self._fingerprint(name, version)
        refused = self._refused.get((name, version))
        if refused is not None and refused.fingerprint == fingerprint:
            return None
        try:
            artifact = self._store.load(
                name, version, allow_version_mismatch=self._settings.allow_version_mismatch
            )
        except (StoreError, OSError) as error:
            # The index shows reasons to API clients: paths relative to the store, not the disk.
            reason = str(error).replace(f"{self._store.root}/", "")
            self._refused[(name, version)] = _Refusal(fingerprint, reason)
            events.append(LoadEvent(name, version, _outcome(error), str(error)))
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
        events.append(LoadEvent(name, version, "ok"))
        log.info("loaded model %s version %d", name, version)
        return served

    def _serve(self, artifact: LoadedArtifact) -> ServedVersion:
        """Make a verified artifact servable: warm it and give each output a batcher."""
        manifest = artifact.manifest
        model = artifact.model
        if manifest.features is None:
            engine = select_engine(model, manifest, self._settings)
            threads_because = None if bounded(model) else "not only scikit-learn's own code"
        else:
            # The engines take float64 matrices; a table model takes a DataFrame per batch,
            # whose building plus a ColumnTransformer costs more than the loop's stall budget.
            outputs = table_outputs(model, manifest.features, manifest.outputs)
            engine = Engine(ENGINE_SKLEARN, outputs, "a table model")
            threads_because = "a table model"
            log.info(
                "model %s version %d: engine %s (a table model: one DataFrame per batch)",
                manifest.name,
                manifest.version,
                ENGINE_SKLEARN,
            )
        # Warm what the batchers will call: with the tree engine, scikit-learn's own methods
        # were already run by its probe and are not on the request path.
        _warm(engine.outputs, manifest)
        batchers: dict[Output, MicroBatcher] = {}
        for output in OUTPUTS:
            if output not in manifest.outputs:
                continue
            inline = self._inline_limit(engine.outputs[output], manifest, output, threads_because)
            observer = self._observer_factory(manifest, output) if self._observer_factory else None
            tracer = None
            if self._tracing is not None:
                tracer = self._tracing.batches(manifest.name, manifest.version, output, engine.name)
            batchers[output] = MicroBatcher(
                engine.outputs[output],
                max_batch_rows=self._settings.max_batch_rows,
                max_queue_rows=self._settings.max_queue_rows,
                max_wait_s=self._settings.max_wait_s,
                max_concurrent_batches=self._settings.max_concurrent_batches,
                inline_max_rows=inline.rows,
                observer=observer,
                tracer=tracer,
                name=f"{manifest.name}/{manifest.version}/{output}",
            )
        return ServedVersion(
            manifest, model, MappingProxyType(batchers), artifact.version_mismatch, engine.name
        )

    def _inline_limit(
        self,
        call: Callable[[NDArray[Any]], Any],
        manifest: Manifest,
        output: Output,
        threads_because: str | None,
    ) -> InlineLimit:
        """How many rows a batch of ``output`` may have to run on the loop; logs the outcome.

        ``threads_because`` says why the model may never run on the loop; None lets it.
        """
        label = f"model {manifest.name} version {manifest.version} {output}"
        if threads_because is not None:
            log.info("%s: calls run in worker threads (%s)", label, threads_because)
            return InlineLimit(0, 0.0)
        limit = inline_limit(call, manifest.n_features, self._settings.max_batch_rows)
        budget_us = LOOP_STALL_BUDGET_S * 1e6
        if not limit.call_s:
            log.info("%s: calls run in worker threads (an all-zero row was refused)", label)
        elif limit.rows:
            log.info(
                "%s: batches of up to %d rows run inline (%.0f us a call; the loop's budget is "
                "%.0f us)",
                label,
                limit.rows,
                limit.call_s * 1e6,
                budget_us,
            )
        else:
            log.info(
                "%s: calls run in worker threads (%.0f us for one row; the loop's budget is "
                "%.0f us)",
                label,
                limit.call_s * 1e6,
                budget_us,
            )
        return limit

    def _fingerprint(self, name: str, version: int) -> _Fingerprint:
        directory = self._store.root / name / str(version)

        def stat(path: Path) -> tuple[int, int] | None:
            try:
                result = path.stat()
            except OSError:
                return None
            return (result.st_mtime_ns, result.st_size)

        artifacts = (stat(directory / file) for file in ARTIFACT_FILES.values())
        return (stat(directory / MANIFEST_FILE), *artifacts)


def _warm(outputs: Mapping[Output, Callable[[NDArray[Any]], Any]], manifest: Manifest) -> None:
    """Run each output once so the first real request pays no first-call costs."""
    sample: NDArray[Any]
    if manifest.features is None:
        sample = np.zeros((1, manifest.n_features), dtype=np.float64)
    else:
        sample = warm_up_table(manifest.features)
    for output, call in outputs.items():
        try:
            call(sample)
        except Exception:
            # A model may reject all-zero rows (e.g. unknown categories); it still serves.
            log.info("warm-up of %s/%d %s skipped", manifest.name, manifest.version, output)


def _outcome(error: StoreError | OSError) -> LoadOutcome:
    if isinstance(error, ChecksumMismatchError):
        return "checksum_mismatch"
    if isinstance(error, UntrustedArtifactError):
        return "untrusted"
    if isinstance(error, VersionMismatchError):
        return "version_mismatch"
    return "error"
