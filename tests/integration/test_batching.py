"""Batching through the app: concurrent requests share model calls, and failures stay isolated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from quart import Quart
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from service.http import create_app
from service.settings import Settings
from service.store import ModelStore
from tests.integration.conftest import serve_through

CONCURRENT = 32


@pytest.fixture(name="registry")
def _registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(name="batching_app")
async def _batching_app(
    store_root: Path, registry: CollectorRegistry, layer: str
) -> AsyncIterator[Quart]:
    # Rows on categorical column 0 take values 0..2; anything else is unknown to the encoder.
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.integers(0, 3, 300), rng.normal(size=300)])
    y = (X[:, 0] == 1).astype(int)
    pipeline = Pipeline(
        [
            (
                "encode",
                ColumnTransformer(
                    [("category", OneHotEncoder(handle_unknown="error"), [0])],
                    remainder="passthrough",
                ),
            ),
            ("classify", LogisticRegression()),
        ]
    ).fit(X, y)
    ModelStore(store_root).save(pipeline, "pipeline")
    # A generous wait with a batch the size of the burst: the burst fills one batch.
    settings = Settings(
        model_store=store_root,
        default_model="iris",
        max_batch_rows=CONCURRENT,
        max_wait_ms=2000,
        reload_interval_s=0,
    )
    app = serve_through(create_app(settings, metrics_registry=registry), layer)
    async with app.test_app():
        yield app


def batches(registry: CollectorRegistry, model: str) -> tuple[float, float]:
    rows = registry.get_sample_value("prediction_batch_rows_sum", {"model": model}) or 0.0
    calls = registry.get_sample_value("prediction_batch_rows_count", {"model": model}) or 0.0
    return rows, calls


async def test_concurrent_requests_share_batches(
    batching_app: Quart, registry: CollectorRegistry, store_root: Path
) -> None:
    """Concurrent single-row requests are answered correctly by fewer, larger model calls."""
    X, _ = load_iris(return_X_y=True)
    rows = X[:CONCURRENT]
    expected = ModelStore(store_root).load("iris", 1).model.predict(rows).tolist()
    client = batching_app.test_client()

    responses = await asyncio.gather(
        *(client.post("/predict", json={"features": [row.tolist()]}) for row in rows)
    )

    answers = [(await r.get_json())["prediction"][0] for r in responses]
    assert expected == answers
    total_rows, calls = batches(registry, "iris")
    assert CONCURRENT == total_rows
    assert calls < CONCURRENT
    assert total_rows / calls > 1


async def test_unknown_category_fails_only_its_request(
    batching_app: Quart, registry: CollectorRegistry
) -> None:
    """One unknown category among many concurrent requests gets 400; the others get 200."""
    client = batching_app.test_client()
    categories = [7.0 if i == 13 else float(i % 3) for i in range(CONCURRENT)]

    responses = await asyncio.gather(
        *(
            client.post("/predict?model=pipeline", json={"features": [[category, 0.5]]})
            for category in categories
        )
    )

    statuses = [r.status_code for r in responses]
    assert [400 if i == 13 else 200 for i in range(CONCURRENT)] == statuses
    assert "unknown categories" in (await responses[13].get_json())["error"]
    _, calls = batches(registry, "pipeline")
    assert calls < CONCURRENT  # they were batched, and the failure was isolated inside a batch
