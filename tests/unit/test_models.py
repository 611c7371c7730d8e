"""The model registry: loading the newest valid versions, hot refresh, unload/load, resolution."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from service.errors import InvalidInputError
from service.errors import ModelNotFoundError
from service.errors import ShuttingDownError
from service.loading import LoadEvent
from service.loading import ServedVersion
from service.models import ModelRegistry
from service.settings import Settings
from service.store import ModelStore
from tests.fakes import SumModel


class Recorder:
    """A RegistryListener that remembers what it was told."""

    def __init__(self) -> None:
        self.loads: list[LoadEvent] = []
        self.served: list[tuple[str, int]] = []
        self.retired: list[tuple[str, int]] = []
        self.served_event = asyncio.Event()

    def load_attempted(self, event: LoadEvent) -> None:
        self.loads.append(event)

    def version_served(self, served: ServedVersion) -> None:
        self.served.append((served.name, served.version))
        self.served_event.set()

    def version_retired(self, served: ServedVersion) -> None:
        self.retired.append((served.name, served.version))


@pytest.fixture(name="store")
def _store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    store.save(SumModel(2), "sum", format="joblib")
    return store


@pytest.fixture(name="recorder")
def _recorder() -> Recorder:
    return Recorder()


@pytest.fixture(name="registry")
async def _registry(store: ModelStore, recorder: Recorder) -> AsyncIterator[ModelRegistry]:
    registry = ModelRegistry(store, Settings(model_store=store.root), listener=recorder)
    await registry.start()
    yield registry
    await registry.aclose(5)


def versions(registry: ModelRegistry, name: str = "sum") -> list[int]:
    return [served.version for served in registry.models().get(name, ())]


def tamper(store: ModelStore, name: str, version: int) -> None:
    (store.root / name / str(version) / "model.joblib").write_bytes(b"tampered")


async def test_serves_newest_version(registry: ModelRegistry) -> None:
    """After start, the only version is served, ready, and answers."""
    served = registry.resolve("sum")
    result = await served.infer("predict", np.array([[1.0, 2.0]]), timeout_s=None)

    assert (True, 1, [3.0]) == (registry.ready, served.version, result.tolist())


async def test_refresh_adds_new_version_as_latest(
    registry: ModelRegistry, store: ModelStore, recorder: Recorder
) -> None:
    """A version registered after start becomes latest on refresh; the old one stays pinned."""
    store.save(SumModel(2), "sum", format="joblib")

    await registry.refresh()

    assert [2, 1] == versions(registry)
    assert 2 == registry.resolve("sum").version
    assert 1 == registry.resolve("sum", 1).version
    assert [("sum", 1), ("sum", 2)] == recorder.served


async def test_keeps_two_newest_and_retires_older(
    registry: ModelRegistry, store: ModelStore, recorder: Recorder
) -> None:
    """With three valid versions only the two newest are served; the oldest is retired."""
    old = registry.resolve("sum")
    store.save(SumModel(2), "sum", format="joblib")
    store.save(SumModel(2), "sum", format="joblib")

    await registry.refresh()
    await registry.aclose(5)

    assert [3, 2] == versions(registry)
    assert [("sum", 1)] == recorder.retired
    with pytest.raises(ModelNotFoundError, match="Version 1"):
        registry.resolve("sum", 1)
    with pytest.raises(ShuttingDownError):
        await old.infer("predict", np.array([[1.0, 2.0]]), timeout_s=None)


async def test_tampered_version_refused_once_and_previous_kept(
    registry: ModelRegistry, store: ModelStore, recorder: Recorder
) -> None:
    """A new version failing its checksum is refused and counted once; the previous one serves."""
    store.save(SumModel(2), "sum", format="joblib")
    tamper(store, "sum", 2)

    await registry.refresh()
    await registry.refresh()

    assert [1] == versions(registry)
    refusals = [e for e in recorder.loads if e.outcome != "ok"]
    assert [("sum", 2, "checksum_mismatch")] == [(e.name, e.version, e.outcome) for e in refusals]


async def test_refused_version_retried_when_files_change(
    registry: ModelRegistry, store: ModelStore
) -> None:
    """A refused version is loaded once its files are fixed."""
    store.save(SumModel(2), "sum", format="joblib")
    good = (store.root / "sum" / "2" / "model.joblib").read_bytes()
    tamper(store, "sum", 2)
    await registry.refresh()

    (store.root / "sum" / "2" / "model.joblib").write_bytes(good)
    await registry.refresh()

    assert [2, 1] == versions(registry)


async def test_removed_version_is_unloaded(registry: ModelRegistry, store: ModelStore) -> None:
    """A version whose directory is removed stops being served."""
    store.save(SumModel(2), "sum", format="joblib")
    await registry.refresh()

    for path in (store.root / "sum" / "2").iterdir():
        path.unlink()
    (store.root / "sum" / "2").rmdir()
    await registry.refresh()

    assert [1] == versions(registry)


async def test_new_model_appears(registry: ModelRegistry, store: ModelStore) -> None:
    """A model added to the store after start is served after refresh."""
    store.save(SumModel(3), "other", format="joblib")

    await registry.refresh()

    assert [1] == versions(registry, "other")


async def test_unload_then_load(registry: ModelRegistry, store: ModelStore) -> None:
    """An unloaded model answers 404 and stays unloaded across refreshes until loaded again."""
    await registry.unload_model("sum")
    await registry.refresh()

    with pytest.raises(ModelNotFoundError):
        registry.resolve("sum")

    await registry.load_model("sum")

    assert [1] == versions(registry)


async def test_unload_unknown_model(registry: ModelRegistry) -> None:
    """Unloading a model that is not served raises ModelNotFoundError."""
    with pytest.raises(ModelNotFoundError):
        await registry.unload_model("nope")


async def test_load_model_without_valid_version(registry: ModelRegistry) -> None:
    """Loading a model the store does not have raises ModelNotFoundError."""
    with pytest.raises(ModelNotFoundError):
        await registry.load_model("nope")


async def test_index_reports_ready_and_refused(registry: ModelRegistry, store: ModelStore) -> None:
    """The index lists served versions as READY and refused ones as UNAVAILABLE with a reason."""
    store.save(SumModel(2), "sum", format="joblib")
    tamper(store, "sum", 2)
    await registry.refresh()

    entries = [(e.name, e.version, e.state) for e in registry.index()]

    assert [("sum", 2, "UNAVAILABLE"), ("sum", 1, "READY")] == entries
    assert "sha256" in registry.index()[0].reason
    assert str(store.root) not in registry.index()[0].reason


async def test_request_reload_wakes_poller(
    registry: ModelRegistry, store: ModelStore, recorder: Recorder
) -> None:
    """request_reload() makes a long-interval poller refresh at once."""
    store.save(SumModel(2), "sum", format="joblib")
    recorder.served_event.clear()
    poller = asyncio.create_task(registry.poll(3600))

    registry.request_reload()
    async with asyncio.timeout(30):
        await recorder.served_event.wait()
    poller.cancel()

    assert [2, 1] == versions(registry)


async def test_refused_version_leaves_index_when_removed(
    registry: ModelRegistry, store: ModelStore
) -> None:
    """A refused version whose directory is removed is no longer listed by the index."""
    store.save(SumModel(2), "sum", format="joblib")
    tamper(store, "sum", 2)
    await registry.refresh()
    for path in (store.root / "sum" / "2").iterdir():
        path.unlink()
    (store.root / "sum" / "2").rmdir()

    await registry.refresh()

    assert [("sum", 1, "READY")] == [(e.name, e.version, e.state) for e in registry.index()]


# Many broken versions make every reload insert many refusals in the loader's thread.
BROKEN_MODELS = ("broken-a", "broken-b")
BROKEN_VERSIONS = 150
RELOAD_ROUNDS = 15


@pytest.fixture(name="fine_thread_switching")
def _fine_thread_switching() -> Iterator[None]:
    """Switch threads every microsecond, so the loader's thread interleaves with the loop."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("fine_thread_switching")
async def test_index_and_load_consistent_during_reloads(
    registry: ModelRegistry, store: ModelStore
) -> None:
    """While loads and refreshes re-read many broken versions, every index lists all of them."""
    for name in BROKEN_MODELS:
        for version in range(1, BROKEN_VERSIONS + 1):
            directory = store.root / name / str(version)
            directory.mkdir(parents=True)
            (directory / "model.json").write_bytes(b"{")
    await registry.refresh()
    expected = [("broken-a", v, "UNAVAILABLE") for v in range(BROKEN_VERSIONS, 0, -1)]
    expected += [("broken-b", v, "UNAVAILABLE") for v in range(BROKEN_VERSIONS, 0, -1)]
    expected += [("sum", 1, "READY")]
    done = asyncio.Event()
    wrong: list[int] = []
    indexes = 0

    async def read_index() -> None:
        nonlocal indexes
        while not done.is_set():
            entries = [(e.name, e.version, e.state) for e in registry.index()]
            if entries != expected:
                wrong.append(len(entries))
            indexes += 1
            await asyncio.sleep(0)

    async def reload() -> None:
        for _ in range(RELOAD_ROUNDS):
            for name in BROKEN_MODELS:
                with pytest.raises(ModelNotFoundError):
                    await registry.load_model(name)
            await registry.refresh()
        done.set()

    async with asyncio.timeout(120):
        await asyncio.gather(read_index(), reload())

    assert ([], True) == (wrong, indexes > RELOAD_ROUNDS)
    assert expected == [(e.name, e.version, e.state) for e in registry.index()]


class TestResolve:
    async def test_default_model_from_settings(self, store: ModelStore) -> None:
        """With several models, the configured default answers requests that name none."""
        store.save(SumModel(3), "other", format="joblib")
        registry = ModelRegistry(store, Settings(model_store=store.root, default_model="other"))
        await registry.start()

        assert "other" == registry.resolve(None).name
        await registry.aclose(5)

    async def test_no_default_with_several_models(self, store: ModelStore) -> None:
        """With several models and no default, naming none is an input error listing them."""
        store.save(SumModel(3), "other", format="joblib")
        registry = ModelRegistry(store, Settings(model_store=store.root))
        await registry.start()

        with pytest.raises(InvalidInputError, match="other, sum"):
            registry.resolve(None)
        await registry.aclose(5)

    async def test_not_ready_with_empty_store(self, tmp_path: Path) -> None:
        """A registry over an empty store is not ready."""
        registry = ModelRegistry(ModelStore(tmp_path), Settings(model_store=tmp_path))
        await registry.start()

        assert not registry.ready
