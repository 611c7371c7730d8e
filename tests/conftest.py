"""Fixtures shared by every test: an isolated environment and a demo model store."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from service.demo import build_demo
from service.store import ModelStore


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PREDICTION_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith(("PREDICTION_", "PROMETHEUS_MULTIPROC")):
            monkeypatch.delenv(name)


@pytest.fixture(name="demo_store_template", scope="session")
def _demo_store_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo models, trained once per session; copy before changing it."""
    root = tmp_path_factory.mktemp("demo_store")
    build_demo(ModelStore(root))
    return root


@pytest.fixture(name="store_root")
def _store_root(demo_store_template: Path, tmp_path: Path) -> Path:
    """A private copy of the demo store that a test may change."""
    root = tmp_path / "model_store"
    shutil.copytree(demo_store_template, root)
    return root
