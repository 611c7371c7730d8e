"""Fixtures that run the app through ``app.test_app()``, so its lifespan (model loading) runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart import Quart

from service.http import create_app
from service.settings import Settings
from tests.types import Client


@pytest.fixture(name="settings")
def _settings(store_root: Path) -> Settings:
    return Settings(model_store=store_root, default_model="iris")


@pytest.fixture(name="app")
async def _app(settings: Settings) -> AsyncIterator[Quart]:
    app = create_app(settings)
    async with app.test_app():
        yield app


@pytest.fixture(name="client")
def _client(app: Quart) -> Client:
    return app.test_client()
