"""A real ``python -m service serve`` process on 127.0.0.1: round trip and clean SIGTERM exit."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.helpers import serve_process


def test_real_server_round_trip_and_sigterm(tmp_path: Path, store_root: Path) -> None:
    """Hypercorn serves /predict over TCP, and SIGTERM stops it with exit code 0."""
    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris"
    ) as server:
        response = httpx.post(
            f"{server.url}/predict", json={"features": [[5.1, 3.5, 1.4, 0.2]]}, timeout=10
        )

        assert (200, {"prediction": [0]}) == (response.status_code, response.json())
        assert "iris" == response.headers["X-Model-Name"]
        assert 0 == server.stop()


def test_bad_setting_stops_startup_with_one_line(tmp_path: Path, store_root: Path) -> None:
    """A bad PREDICTION_* value stops start-up with one line naming it, exit code 2."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "service", "serve", "--model-store", str(store_root)],
        env={"PREDICTION_MAX_BATCH_ROWS": "lots", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert 2 == result.returncode
    assert (
        "error: PREDICTION_MAX_BATCH_ROWS has value 'lots'; expected an integer.\n" == result.stderr
    )
