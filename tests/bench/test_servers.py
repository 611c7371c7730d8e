"""How the bench starts each server, and how it finds the Python 3.13 of the extra (a) row."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bench import CHECKOUT
from bench import BenchError
from bench.catalog import BARE
from bench.catalog import BARE_ONE
from bench.catalog import FLASK_GTHREAD
from bench.catalog import SERVICE
from bench.catalog import SERVICE_313
from bench.catalog import SERVICE_TRACED
from bench.py313 import Interpreter
from bench.py313 import find_python313
from bench.servers import server_command

STORE = Path("/tmp/store")
ARTIFACTS = {"logreg": STORE / "logreg" / "1" / "model.joblib"}


def command(server: str, **overrides: object) -> tuple[list[str], dict[str, str]]:
    arguments: dict[str, object] = {
        "port": 8123,
        "store_root": STORE,
        "artifacts": ARTIFACTS,
        "service_workers": None,
        "workers": 2,
        **overrides,
    }
    return server_command(server, **arguments)  # type: ignore[arg-type]


def test_bare_app_runs_as_many_workers_as_the_service() -> None:
    """(d) gets the service's worker count; the one-process (d) always one."""
    bare, _ = command(BARE, workers=3)
    one, _ = command(BARE_ONE, workers=3)

    assert bare[-2:] == ["--workers", "3"]
    assert one[-2:] == ["--workers", "1"]
    assert bare[1:3] == ["-m", "bench.apps.bare_app"]


def test_comparison_apps_import_the_bench_from_this_checkout() -> None:
    """The bare and Flask apps get the checkout on PYTHONPATH; the installed service needs none."""
    _, bare_env = command(BARE)
    _, flask_env = command(FLASK_GTHREAD)
    _, service_env = command(SERVICE)

    assert bare_env["PYTHONPATH"].split(os.pathsep)[0] == str(CHECKOUT)
    assert flask_env["PYTHONPATH"].split(os.pathsep)[0] == str(CHECKOUT)
    assert "PYTHONPATH" not in service_env


def test_the_service_row_runs_with_tracing_off_and_the_traced_row_exports_to_the_bench() -> None:
    """(a) has tracing off whatever the environment says; the traced row is (a)'s command line
    with tracing on, exporting to the endpoint the bench gives it."""
    default, service_env = command(SERVICE)
    traced, traced_env = command(SERVICE_TRACED, otlp_endpoint="http://127.0.0.1:4318")

    assert service_env == {"PREDICTION_TRACING": "false"}
    assert traced == default
    assert traced_env == {
        "PREDICTION_TRACING": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_SERVICE_NAME": "prediction-bench",
    }


def test_the_traced_row_needs_an_endpoint() -> None:
    """Asking for the traced row without a receiver is a BenchError, not a server exporting to
    the default localhost:4318."""
    with pytest.raises(BenchError, match="OTLP endpoint"):
        command(SERVICE_TRACED)


def test_service_rows_differ_only_in_their_python() -> None:
    """(a) on 3.13 is (a)'s command line with the 3.13 venv's python."""
    default, _ = command(SERVICE, service_workers=2)
    on_313, _ = command(SERVICE_313, service_workers=2, python313=Path("/v/bin/python"))

    assert default[0] == sys.executable
    assert on_313 == ["/v/bin/python", *default[1:]]
    assert default[-2:] == ["--workers", "2"]


def test_the_313_row_needs_its_python() -> None:
    """Asking for (a) on 3.13 without a venv is a BenchError, not the default Python."""
    with pytest.raises(BenchError, match=r"Python 3\.13 virtualenv"):
        command(SERVICE_313)


def script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "python3.13"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def test_a_python_313_is_found_by_what_it_reports(tmp_path: Path) -> None:
    """An executable that reports 3.13.x is taken, with that version."""
    exe = script(tmp_path, "echo 3.13.1")

    assert find_python313(exe, own_version=(3, 11)) == Interpreter(exe, "3.13.1")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("echo 3.12.4", "is Python 3.12.4, not 3.13"),
        ("echo 'pyenv: python3.13: command not found' >&2; exit 127", "did not run: pyenv:"),
    ],
)
def test_a_wrong_or_broken_python_is_skipped_with_the_reason(
    tmp_path: Path, body: str, reason: str
) -> None:
    """Another version, or a shim that fails, gives a one-line reason instead of an interpreter."""
    found = find_python313(script(tmp_path, body), own_version=(3, 11))

    assert isinstance(found, str)
    assert reason in found


def test_no_python_313_on_the_path_or_already_running_on_it() -> None:
    """A name not on the PATH, and a bench already on 3.13, are skipped with their reason."""
    assert find_python313("no-such-python-3.13", own_version=(3, 11)) == (
        "no-such-python-3.13 is not on the PATH"
    )
    assert "already runs on it" in str(find_python313(sys.executable, own_version=(3, 13)))
