"""The wheel holds the service and nothing else: no bench, no tests, no Flask.

The wheel is built from a copy of the checkout (bench/ and tests/ included, so their absence from
the wheel is the packaging's doing), with pip as a user would build it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 300
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check")
# What the bench needs and the service does not.
BENCH_ONLY = ("flask", "gunicorn", "matplotlib")
_IMPORTS_BENCH_ONLY = re.compile(
    rf"^\s*(?:import|from)\s+(?:bench|{'|'.join(BENCH_ONLY)})\b", re.MULTILINE
)


@pytest.fixture(name="wheel", scope="module")
def _wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("checkout") / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".bench-venv-*",
            "*_cache",
            ".hypothesis",
            "__pycache__",
            "model_store",
            "bench-results",
            "build",
            "*.egg-info",
        ),
    )
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run(
        [*PIP_WHEEL, "--wheel-dir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        check=False,
    )
    assert built.returncode == 0, built.stderr + built.stdout
    (wheel,) = out.glob("prediction_service-*.whl")
    return wheel


def test_wheel_holds_only_the_service_package(wheel: Path) -> None:
    """Every file of the wheel is under service/ or its .dist-info; bench/ and tests/ are not."""
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/", 1)[0] for name in names}

    assert {top for top in tops if not top.endswith(".dist-info")} == {"service"}
    assert "service/cli.py" in names
    assert not [name for name in names if "bench" in name]


def test_no_module_in_the_wheel_imports_the_bench_or_flask(wheel: Path) -> None:
    """No module of the wheel imports bench, Flask, gunicorn or matplotlib."""
    with zipfile.ZipFile(wheel) as archive:
        offenders = [
            name
            for name in archive.namelist()
            if name.endswith(".py") and _IMPORTS_BENCH_ONLY.search(archive.read(name).decode())
        ]

    assert offenders == []


def test_the_wheel_requires_no_flask(wheel: Path) -> None:
    """The service requires none of the bench's packages itself, and offers no bench extra.

    (Quart 0.19+ is built on Flask's sans-I/O core, so the Flask library still comes with it;
    what the service must not have is a dependency of its own on Flask or the bench's tools.)
    """
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    requires = metadata.get_all("Requires-Dist") or []
    required = [r for r in requires if "extra ==" not in r]

    assert required  # quart, scikit-learn, ...: the parse found the requirements
    assert [r for r in required if re.match(rf"({'|'.join(BENCH_ONLY)})\b", r, re.I)] == []
    assert "bench" not in (metadata.get_all("Provides-Extra") or [])
