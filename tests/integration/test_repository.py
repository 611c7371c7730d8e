"""The model repository API: bearer-token guard, index, load and unload."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart import Quart

from service.http import create_app
from service.settings import Settings

TOKEN = "s3cret-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETOSA = [5.1, 3.5, 1.4, 0.2]
DISABLED = "The model repository API is disabled; set PREDICTION_ADMIN_TOKEN to enable it."
UNAUTHORIZED = "A valid 'Authorization: Bearer <token>' header is required."


@pytest.fixture(name="admin_app")
async def _admin_app(store_root: Path) -> AsyncIterator[Quart]:
    app = create_app(Settings(model_store=store_root, default_model="iris", admin_token=TOKEN))
    async with app.test_app():
        yield app


async def test_forbidden_without_configured_token(app: Quart) -> None:
    """Without PREDICTION_ADMIN_TOKEN every repository route answers 403, even with a token."""
    client = app.test_client()

    responses = [
        await client.get("/v2/repository/index", headers=AUTH),
        await client.post("/v2/repository/models/iris/load", headers=AUTH),
        await client.post("/v2/repository/models/iris/unload", headers=AUTH),
    ]

    assert [(403, {"error": DISABLED})] * 3 == [
        (response.status_code, await response.get_json()) for response in responses
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-0123456789"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ],
)
async def test_unauthorized_with_missing_or_wrong_token(
    admin_app: Quart, headers: dict[str, str]
) -> None:
    """A missing, wrong or non-bearer token gets 401 with WWW-Authenticate: Bearer."""
    response = await admin_app.test_client().get("/v2/repository/index", headers=headers)

    assert (401, "Bearer", {"error": UNAUTHORIZED}) == (
        response.status_code,
        response.headers["WWW-Authenticate"],
        await response.get_json(),
    )


async def test_index_lists_versions(admin_app: Quart) -> None:
    """The index lists every served version as READY."""
    response = await admin_app.test_client().get("/v2/repository/index", headers=AUTH)

    assert 200 == response.status_code
    assert [
        {"name": "diabetes", "version": "1", "state": "READY", "reason": ""},
        {"name": "iris", "version": "1", "state": "READY", "reason": ""},
        {"name": "loans", "version": "1", "state": "READY", "reason": ""},
    ] == await response.get_json()


async def test_unload_then_load(admin_app: Quart) -> None:
    """After unload a model answers 404; after load it answers again."""
    client = admin_app.test_client()

    unloaded = await client.post("/v2/repository/models/iris/unload", headers=AUTH)
    gone = await client.post("/predict", json={"features": SETOSA})
    loaded = await client.post("/v2/repository/models/iris/load", headers=AUTH)
    back = await client.post("/predict", json={"features": SETOSA})

    assert [
        (200, {}),
        (404, {"error": "Model 'iris' is not loaded."}),
        (200, {}),
        (200, {"prediction": [0]}),
    ] == [(r.status_code, await r.get_json()) for r in (unloaded, gone, loaded, back)]


async def test_load_unknown_model(admin_app: Quart) -> None:
    """Loading a model the store does not have is a 404."""
    response = await admin_app.test_client().post("/v2/repository/models/nope/load", headers=AUTH)

    assert (404, {"error": "Model 'nope' is not loaded."}) == (
        response.status_code,
        await response.get_json(),
    )


async def test_unload_unknown_model(admin_app: Quart) -> None:
    """Unloading a model that is not loaded is a 404."""
    response = await admin_app.test_client().post("/v2/repository/models/nope/unload", headers=AUTH)

    assert (404, {"error": "Model 'nope' is not loaded."}) == (
        response.status_code,
        await response.get_json(),
    )
