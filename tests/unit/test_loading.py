"""The model loader: plans built off the loop, refusals remembered by file fingerprint."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service.loading import LoadPlan
from service.loading import ModelLoader
from service.settings import Settings
from service.store import ModelStore
from tests.fakes import SumModel


@pytest.fixture(name="store")
def _store(tmp_path: Path) -> ModelStore:
    store = ModelStore(tmp_path / "store")
    store.save(SumModel(2), "sum", format="joblib")
    store.save(SumModel(2), "sum", format="joblib")
    (store.root / "sum" / "2" / "model.joblib").write_bytes(b"tampered")
    return store


@pytest.fixture(name="loader")
def _loader(store: ModelStore) -> ModelLoader:
    return ModelLoader(store, Settings(model_store=store.root))


def summary(plan: LoadPlan) -> tuple[dict[str, list[int]], list[tuple[str, int]], list[str]]:
    served = {name: [each.version for each in versions] for name, versions in plan.models.items()}
    return served, sorted(plan.refused), [f"{e.name}/{e.version} {e.outcome}" for e in plan.events]


def test_first_plan_loads_valid_and_refuses_tampered(loader: ModelLoader) -> None:
    """The first plan serves the valid version and lists the tampered one with its event."""
    plan = loader.plan({})

    assert (
        {"sum": [1]},
        [("sum", 2)],
        ["sum/2 checksum_mismatch", "sum/1 ok"],
    ) == summary(plan)
    assert plan.refused[("sum", 2)].startswith("Model 'sum' version 2: the artifact's sha256 is")


def test_unchanged_files_are_not_loaded_again(loader: ModelLoader) -> None:
    """A second plan reuses the served version and skips the refused one: no load attempts."""
    first = loader.plan({})

    second = loader.plan(first.models)

    assert ({"sum": [1]}, [("sum", 2)], []) == summary(second)
    assert first.models["sum"][0] is second.models["sum"][0]


def test_retry_loads_a_refused_version_again(loader: ModelLoader) -> None:
    """``retry`` makes a refused version load again although its files did not change."""
    first = loader.plan({})

    again = loader.plan(first.models, names=["sum"], retry=["sum"])

    assert ({"sum": [1]}, [("sum", 2)], ["sum/2 checksum_mismatch"]) == summary(again)


def test_plan_is_read_only(loader: ModelLoader) -> None:
    """A plan cannot be changed after the loader hands it over."""
    plan = loader.plan({})

    with pytest.raises(TypeError):
        plan.refused[("sum", 9)] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        plan.models["other"] = ()  # type: ignore[index]


def test_table_model_is_served_by_scikit_learn(
    demo_store_template: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A version with a feature schema skips the exact engines and runs in worker threads."""
    store = ModelStore(demo_store_template)
    caplog.set_level(logging.INFO, logger="service.loading")

    plan = ModelLoader(store, Settings(model_store=store.root)).plan({}, names=["loans"])

    assert plan.models["loans"][0].engine == "sklearn"
    assert "model loans version 1: engine sklearn (a table model" in caplog.text
    assert "model loans version 1 predict: calls run in worker threads (a table model)" in (
        caplog.text
    )
    assert "warm-up" not in caplog.text
