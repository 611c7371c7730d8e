"""The models being served: which versions answer, hot swaps, retirement and name resolution.

:class:`ModelRegistry` serves the newest valid versions of every model in the store. Loading is
the job of :class:`~service.loading.ModelLoader`, which runs in a worker thread and hands back
an immutable :class:`~service.loading.LoadPlan`; the registry publishes it, starts the new
versions' batchers and retires the versions that left.

Threads: everything the registry holds (the served versions, the refusal reasons the index
shows, the unloaded models, the retiring tasks) is read and written on the event loop only, and
the listener is called on the loop. The only thing that crosses to the loader's thread is
arguments: immutable snapshots going out, a plan coming back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING
from typing import Literal
from typing import Protocol

from service.errors import InvalidInputError
from service.errors import ModelNotFoundError
from service.loading import LoadEvent
from service.loading import LoadPlan
from service.loading import ModelLoader
from service.loading import ObserverFactory
from service.loading import ServedVersion
from service.settings import Settings
from service.store import ModelStore

if TYPE_CHECKING:  # only a process that traces imports OpenTelemetry (service.tracing)
    from service.tracing import Tracing

__all__ = [
    "IndexEntry",
    "ModelRegistry",
    "RegistryListener",
]

log = logging.getLogger(__name__)


class RegistryListener(Protocol):
    """What the registry reports about loading and serving; the metrics module implements it.

    Every method is called on the event loop.
    """

    def load_attempted(self, event: LoadEvent) -> None:
        """A version was loaded or refused."""

    def version_served(self, served: ServedVersion) -> None:
        """A version started answering requests."""

    def version_retired(self, served: ServedVersion) -> None:
        """A version stopped answering requests."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One version on disk or in memory, as the repository index reports it."""

    name: str
    version: int
    state: Literal["READY", "UNAVAILABLE"]
    reason: str = ""


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
        tracing: gives the batchers their span tracers; ``None`` when tracing is off.
    """

    def __init__(
        self,
        store: ModelStore,
        settings: Settings,
        *,
        observer_factory: ObserverFactory | None = None,
        listener: RegistryListener | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._settings = settings
        self._loader = ModelLoader(
            store, settings, observer_factory=observer_factory, tracing=tracing
        )
        self._listener = listener
        # Both replaced wholesale from one plan, so readers never see a half update.
        self._models: Mapping[str, tuple[ServedVersion, ...]] = MappingProxyType({})
        self._refused: Mapping[tuple[str, int], str] = MappingProxyType({})
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
            for (name, version), reason in self._refused.items()
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
        await self._refresh(names)

    async def load_model(self, name: str) -> None:
        """Load ``name``'s newest valid versions now, even if it was unloaded or refused before.

        Raises:
            ModelNotFoundError: the store has no valid version of ``name``.
        """
        self._unloaded.discard(name)
        await self._refresh([name], retry=[name])
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
            kept = {key: value for key, value in current.items() if key != name}
            self._swap(current, MappingProxyType(kept))

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

    async def _refresh(self, names: Collection[str] | None, *, retry: Collection[str] = ()) -> None:
        async with self._refresh_lock:
            current = self._models
            plan = await asyncio.to_thread(
                self._loader.plan,
                current,
                names=names,
                unloaded=frozenset(self._unloaded),
                retry=retry,
            )
            self._publish(current, plan)

    def _publish(self, current: Mapping[str, tuple[ServedVersion, ...]], plan: LoadPlan) -> None:
        """Report the plan's load attempts, then serve its versions and show its refusals."""
        if self._listener is not None:
            for event in plan.events:
                self._listener.load_attempted(event)
        self._refused = plan.refused
        self._swap(current, plan.models)

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
