"""Store faults: broken versions are refused and counted, the rest serves, verify names them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers import OtherUser
from tests.helpers import serve_process

SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}


def copy_iris(store: Path, name: str) -> Path:
    """A copy of iris version 1 under ``name``, with the manifest naming it."""
    target = store / name / "1"
    shutil.copytree(store / "iris" / "1", target)
    manifest = json.loads((target / "model.json").read_text())
    (target / "model.json").write_text(json.dumps({**manifest, "name": name}))
    return target


@pytest.fixture(name="broken_store")
def _broken_store(fault_store: Path) -> Path:
    """iris plus four broken models: truncated, tampered, other sklearn, unreadable."""
    # A copy cut short: the manifest still describes the whole artifact.
    artifact = copy_iris(fault_store, "truncated") / "model.skops"
    artifact.write_bytes(artifact.read_bytes()[:1000])

    tampered = copy_iris(fault_store, "tampered") / "model.skops"
    data = bytearray(tampered.read_bytes())
    data[-10] ^= 0xFF
    tampered.write_bytes(bytes(data))

    other = copy_iris(fault_store, "othersklearn") / "model.json"
    other.write_text(json.dumps({**json.loads(other.read_text()), "framework_version": "0.20.0"}))

    copy_iris(fault_store, "unreadable").chmod(0o000)
    return fault_store


def test_broken_versions_refused_counted_rest_serves(
    tmp_path: Path, broken_store: Path, nobody: OtherUser
) -> None:
    """Each broken version is refused with its outcome counted; iris keeps answering."""
    env = {"PREDICTION_RELOAD_INTERVAL_S": "0"}
    with (
        serve_process(tmp_path, "--model-store", str(broken_store), env=env, user=nobody) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        iris = client.post("/predict?model=iris", json=SETOSA)
        refused = {
            name: client.post(f"/predict?model={name}", json=SETOSA).status_code
            for name in ("truncated", "tampered", "othersklearn", "unreadable")
        }
        metrics = client.get("/metrics").text

    assert (200, {"prediction": [0]}) == (iris.status_code, iris.json())
    assert {"truncated": 404, "tampered": 404, "othersklearn": 404, "unreadable": 404} == refused
    for name, outcome in [
        ("truncated", "checksum_mismatch"),
        ("tampered", "checksum_mismatch"),
        ("othersklearn", "version_mismatch"),
        ("unreadable", "error"),
    ]:
        assert f'prediction_model_loads_total{{model="{name}",outcome="{outcome}"}} 1.0' in metrics


def test_verify_reports_each_broken_version(broken_store: Path, nobody: OtherUser) -> None:
    """python -m service verify, as a non-root user, exits 1 naming every broken version."""
    result = subprocess.run(
        nobody.command("-m", "service", "verify", "--model-store", str(broken_store)),
        capture_output=True,
        text=True,
        cwd=nobody.root,
        env=nobody.environ(os.environ),
        timeout=120,
        check=False,
    )

    assert 1 == result.returncode
    bad = sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith("BAD"))
    assert ["othersklearn", "tampered", "truncated", "unreadable"] == bad
    assert "ok  iris version 1" in result.stdout
