"""Fixtures of the reliability suite: a store of real and faulty models any user can read."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.store import ModelStore
from tests.fakes import CountingModel
from tests.fakes import FailingModel
from tests.fakes import HangingModel
from tests.fakes import WrongRowsModel
from tests.helpers import NOBODY
from tests.helpers import OtherUser
from tests.helpers import readable_install

# How long the hanging model hangs: longer than any deadline the tests set, shorter than a run.
HANG_S = 20.0
# How long the counting model takes per call: long enough to queue requests behind it.
COUNTING_DELAY_S = 1.0


@pytest.fixture(name="open_dir")
def _open_dir() -> Iterator[Path]:
    """A directory under /tmp that a server running as another user can read."""
    path = Path(tempfile.mkdtemp(prefix="reliability-"))
    path.chmod(0o755)
    yield path
    for child in path.rglob("*"):
        if child.is_dir():
            child.chmod(0o755)
    shutil.rmtree(path)


@pytest.fixture(name="nobody", scope="session")
def _nobody() -> Iterator[OtherUser]:
    """nobody, with copies of the code and packages it can read wherever the checkout lies."""
    path = Path(tempfile.mkdtemp(prefix="as-nobody-"))
    try:
        path.chmod(0o755)
        yield readable_install(path, NOBODY)
    finally:
        shutil.rmtree(path)


@pytest.fixture(name="fault_store")
def _fault_store(open_dir: Path, demo_store_template: Path) -> Path:
    """The demo models, plus models that fail, answer wrong row counts, hang, or count calls."""
    root = open_dir / "store"
    shutil.copytree(demo_store_template, root)
    store = ModelStore(root)
    store.save(FailingModel(2), "failing", format="joblib")
    store.save(WrongRowsModel(2), "wrongrows", format="joblib")
    store.save(HangingModel(2, HANG_S), "hanging", format="joblib")
    store.save(
        CountingModel(2, str(open_dir / "calls.txt"), COUNTING_DELAY_S), "counting", format="joblib"
    )
    # copytree keeps the template's private (0700) modes; a server run as nobody must read it.
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


# Figures the suite measured, printed at the end of the run for the README's Reliability table.
FIGURES: dict[str, str] = {}


@pytest.fixture(name="figures")
def _figures() -> dict[str, str]:
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("reliability figures")
        for name, value in FIGURES.items():
            terminalreporter.write_line(f"{name}: {value}")
