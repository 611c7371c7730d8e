"""Metrics move as they should after known traffic, read back from the app's own registry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from quart import Quart

from service.http import create_app
from service.http.state import get_state
from service.settings import Settings
from service.store import ModelStore
from tests.fakes import GATES
from tests.fakes import Gate
from tests.fakes import GatedModel
from tests.integration.conftest import serve_through

SETOSA = [5.1, 3.5, 1.4, 0.2]


async def until(condition: Callable[[], bool], max_yields: int = 10_000) -> None:
    """Let other tasks run until ``condition`` holds; fail after ``max_yields`` turns."""
    for _ in range(max_yields):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


@pytest.fixture(name="registry")
def _registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture(name="gate")
def _gate() -> Iterator[Gate]:
    gate = Gate()
    GATES["metrics"] = gate
    yield gate
    gate.open()
    del GATES["metrics"]


@pytest.fixture(name="app")
async def _app(
    store_root: Path, registry: CollectorRegistry, gate: Gate, layer: str
) -> AsyncIterator[Quart]:
    ModelStore(store_root).save(GatedModel(2, "metrics"), "gated", format="joblib")
    settings = Settings(
        model_store=store_root,
        default_model="iris",
        max_batch_rows=1,
        max_queue_rows=1,
        max_request_rows=1,
    )
    gate.open()  # let warm-up through; tests close it again where they need it
    app = serve_through(create_app(settings, metrics_registry=registry), layer)
    async with app.test_app():
        # Warm-up went through the gate: reset all of it, or `entered` would already be set.
        gate.opened.clear()
        gate.entered.clear()
        gate.calls.clear()
        yield app


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


async def test_ok_request_counted(app: Quart, registry: CollectorRegistry) -> None:
    """An answered prediction counts as ok, with its HTTP series and one batch row."""
    await app.test_client().post("/predict", json={"features": [SETOSA]})

    assert 1 == sample(
        registry, "prediction_requests_total", model="iris", version="1", outcome="ok"
    )
    assert 1 == sample(
        registry,
        "prediction_http_requests_total",
        method="POST",
        route="/predict",
        status="200",
    )
    assert 1 == sample(
        registry,
        "prediction_http_request_duration_seconds_count",
        method="POST",
        route="/predict",
    )
    assert 1 == sample(registry, "prediction_batch_rows_sum", model="iris")
    assert 1 == sample(registry, "prediction_queue_wait_seconds_count", model="iris")
    assert 1 == sample(
        registry, "prediction_model_seconds_count", model="iris", version="1", output="predict"
    )


async def test_invalid_request_counted(app: Quart, registry: CollectorRegistry) -> None:
    """A request refused for bad input counts as invalid for the model it named."""
    await app.test_client().post("/predict", json={"features": [[1, 2]]})

    assert 1 == sample(
        registry, "prediction_requests_total", model="iris", version="1", outcome="invalid"
    )
    assert 1 == sample(
        registry,
        "prediction_http_requests_total",
        method="POST",
        route="/predict",
        status="400",
    )


async def test_unknown_route_label_is_bounded(app: Quart, registry: CollectorRegistry) -> None:
    """A 404 on an unknown path is labelled with a constant route, never the raw path."""
    await app.test_client().get("/some/random/path")

    assert 1 == sample(
        registry,
        "prediction_http_requests_total",
        method="GET",
        route="<unmatched>",
        status="404",
    )


async def test_shed_and_timed_out_requests_counted(
    app: Quart, registry: CollectorRegistry, gate: Gate
) -> None:
    """With the model busy and the queue full, one request is shed (503), one times out (504)."""
    client = app.test_client()
    body = {"features": [[1, 2]]}
    running = asyncio.create_task(client.post("/predict?model=gated", json=body))
    await asyncio.to_thread(gate.entered.wait, 10)
    # The gate stays shut, so this one can only expire in the queue.
    timed_out = await client.post(
        "/predict?model=gated", json=body, headers={"X-Request-Timeout-Ms": "50"}
    )
    # A holder with no short deadline fills the queue for as long as the test needs, then
    # disconnects as a real client would: dropped from the queue, with no outcome.
    holder = client.request(
        "/predict?model=gated", method="POST", headers={"Content-Type": "application/json"}
    )
    async with holder:
        await holder.send(orjson.dumps(body))
        await holder.send_complete()
        await until(lambda: 1 == sample(registry, "prediction_queue_rows", model="gated"))
        shed = await client.post("/predict?model=gated", json=body)
        await holder.disconnect()
    gate.open()
    await running

    assert (503, "1") == (shed.status_code, shed.headers["Retry-After"])
    assert 504 == timed_out.status_code
    assert [1] == gate.calls  # the timed-out request never reached the model
    for outcome in ("ok", "rejected", "timeout"):
        assert 1 == sample(
            registry, "prediction_requests_total", model="gated", version="1", outcome=outcome
        )
    assert 0 == sample(registry, "prediction_queue_rows", model="gated")


async def test_model_info_and_loads(app: Quart, registry: CollectorRegistry) -> None:
    """Each loaded version has a model_info series (naming its engine) and an ok load count."""
    manifest = ModelStore(Path(get_state(app).settings.model_store)).read_manifest("iris", 1)
    text = await (await app.test_client().get("/metrics")).get_data(as_text=True)

    assert 1 == sample(
        registry,
        "prediction_model_info",
        model="iris",
        version="1",
        sha256=manifest.sha256,
        framework_version=manifest.framework_version,
        version_mismatch="false",
        engine="trees",
    )
    assert "prediction_model_info{" in text
    assert 1 == sample(registry, "prediction_model_loads_total", model="iris", outcome="ok")


async def test_refused_version_counted(store_root: Path, registry: CollectorRegistry) -> None:
    """A version with a bad checksum is refused and counted as checksum_mismatch."""
    (store_root / "iris" / "1" / "model.skops").write_bytes(b"tampered")
    app = create_app(Settings(model_store=store_root), metrics_registry=registry)

    async with app.test_app():
        response = await app.test_client().post("/predict?model=iris", json={"features": [SETOSA]})

    assert 404 == response.status_code
    assert 1 == sample(
        registry, "prediction_model_loads_total", model="iris", outcome="checksum_mismatch"
    )


async def test_metrics_text_format(app: Quart) -> None:
    """GET /metrics answers the Prometheus text format by default."""
    response = await app.test_client().get("/metrics")

    assert 200 == response.status_code
    assert response.content_type.startswith("text/plain")
    assert b"# TYPE prediction_requests_total counter" in await response.get_data()


async def test_metrics_openmetrics_when_asked(app: Quart) -> None:
    """GET /metrics answers OpenMetrics when the scraper's Accept asks for it."""
    response = await app.test_client().get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )

    assert response.content_type.startswith("application/openmetrics-text")
    assert (await response.get_data(as_text=True)).endswith("# EOF\n")
