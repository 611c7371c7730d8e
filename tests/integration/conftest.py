"""Fixtures that run the app through ``app.test_app()``, so its lifespan (model loading) runs.

Every test of the app runs twice, once per layer that serves a prediction: ``asgi`` sends a
Content-Length with each body, as HTTP clients do, so prediction routes take the ASGI path in
front of Quart; ``quart`` sends none (as a chunked upload), so Quart's own views serve them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from quart import Quart
from quart.testing import QuartClient
from quart.testing.utils import make_test_body_with_headers
from quart.testing.utils import sentinel
from werkzeug.datastructures import Headers

from service.http import create_app
from service.settings import Settings
from tests.types import Client


class StatedLengthClient(QuartClient):
    """Quart's test client, sending a Content-Length with every body (Quart's sends none)."""

    async def _make_request(
        self,
        path: str,
        method: str,
        headers: dict[str, str] | Headers | None,
        data: str | bytes | None,
        form: dict[str, Any] | None,
        files: dict[str, Any] | None,
        query_string: dict[str, Any] | None,
        json: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # Builds the body as Quart would, then sends it as plain data with its length.
        body, body_headers = make_test_body_with_headers(
            data=data, form=form, files=files, json=json, app=self.app
        )
        stated = Headers(headers)
        stated.update(body_headers)
        stated["Content-Length"] = str(len(body))
        return await super()._make_request(
            path, method, stated, body, None, None, query_string, sentinel, *args, **kwargs
        )


@pytest.fixture(name="settings")
def _settings(store_root: Path) -> Settings:
    return Settings(model_store=store_root, default_model="iris")


@pytest.fixture(name="layer", params=["asgi", "quart"])
def _layer(request: pytest.FixtureRequest) -> str:
    layer: str = request.param
    return layer


def serve_through(app: Quart, layer: str) -> Quart:
    """Make ``app.test_client()`` reach the prediction routes through ``layer``."""
    if layer == "asgi":
        # Quart types the attribute with its test-client protocol, which QuartClient itself
        # does not declare it implements.
        app.test_client_class = StatedLengthClient  # type: ignore[assignment]
    return app


@pytest.fixture(name="app")
async def _app(settings: Settings, layer: str) -> AsyncIterator[Quart]:
    app = serve_through(create_app(settings), layer)
    async with app.test_app():
        yield app


@pytest.fixture(name="client")
def _client(app: Quart) -> Client:
    return app.test_client()
