"""Security: no paths or tracebacks in answers, no files served, admin routes closed, non-root."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.helpers import OtherUser
from tests.helpers import serve_process

SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}
LEAKS = re.compile(r"Traceback|File \"|/work/|/tmp/|site-packages|\.py\b")


@pytest.fixture(name="read_only_store")
def _read_only_store(fault_store: Path) -> Path:
    """The store with every directory and file made read-only for everyone."""
    for path in [fault_store, *fault_store.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    return fault_store


def test_non_root_server_with_read_only_store(
    tmp_path: Path, read_only_store: Path, nobody: OtherUser
) -> None:
    """Run as nobody over a read-only store, the server serves and refuses what it should."""
    env = {"PREDICTION_RELOAD_INTERVAL_S": "0.2"}  # polling must not need write access either
    with (
        serve_process(
            tmp_path,
            "--model-store",
            str(read_only_store),
            "--default-model",
            "iris",
            env=env,
            user=nobody,
        ) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        predicted = client.post("/predict", json=SETOSA)
        admin = client.get("/v2/repository/index", headers={"Authorization": "Bearer x" * 3})
        files = {
            path: client.get(path).status_code
            for path in (
                "/model_store/iris/1/model.joblib",
                "/iris/1/model.joblib",
                "/static/model.joblib",
                "/../../etc/passwd",
                "/%2e%2e/%2e%2e/etc/passwd",
                "/service/__init__.py",
                "/.env",
            )
        }
        bad = [
            client.post("/predict", content=b"{", headers={"Content-Type": "application/json"}),
            client.post("/predict", json={"features": [["x", 1, 2, 3]]}),
            client.post("/predict?model=../../etc", json=SETOSA),
            client.post("/predict?model=wrongrows", json={"features": [[1, 2]]}),
            client.post("/predict?version=999999999999999999999", json=SETOSA),
        ]
        log = server.log()

    assert (200, {"prediction": [0]}) == (predicted.status_code, predicted.json())
    assert 403 == admin.status_code
    assert dict.fromkeys(files, 404) == files
    for response in bad:
        assert ["error"] == list(response.json())
        assert LEAKS.search(response.text) is None, response.text
    assert "Permission denied" not in log
