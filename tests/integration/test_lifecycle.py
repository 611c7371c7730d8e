"""Model lifecycle on a real server under load: hot reload, refused versions, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import httpx

from service.store import ModelStore
from tests.helpers import Reply
from tests.helpers import load
from tests.helpers import serve_process

SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}
TOKEN = "s3cret-token-0123456789"


def add_version(store_root: Path, name: str = "iris", *, tampered: bool = False) -> int:
    """Add a copy of version 1 as the next version, appearing atomically (rename)."""
    store = ModelStore(store_root)
    version = store.versions(name)[-1] + 1
    staging = store_root / name / f".staging-{version}"
    shutil.copytree(store_root / name / "1", staging)
    manifest = (staging / "model.json").read_text().replace('"version": 1', f'"version": {version}')
    (staging / "model.json").write_text(manifest)
    if tampered:
        artifact = staging / json.loads(manifest)["artifact"]
        data = bytearray(artifact.read_bytes())
        data[-10] ^= 0xFF
        artifact.write_bytes(bytes(data))
    staging.rename(store_root / name / str(version))
    return version


async def test_new_version_switches_under_load_without_errors(
    tmp_path: Path, store_root: Path
) -> None:
    """Under load, a registered version takes over within the poll interval with zero non-200s."""
    env = {"PREDICTION_RELOAD_INTERVAL_S": "0.5"}
    first_on_v1 = asyncio.Event()
    first_on_v2 = asyncio.Event()
    many_on_v2 = asyncio.Event()
    on_v2 = 0

    def watch(reply: Reply) -> None:
        nonlocal on_v2
        if reply.model_version == "1":
            first_on_v1.set()
        elif reply.model_version == "2":
            first_on_v2.set()
            on_v2 += 1
            if on_v2 >= 200:
                many_on_v2.set()

    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
    ) as server:
        stop = asyncio.Event()
        run = asyncio.create_task(
            load(
                server.url,
                connections=16,
                duration_s=60,
                max_requests=50_000,
                json_body=SETOSA,
                stop=stop,
                on_reply=watch,
            )
        )
        async with asyncio.timeout(20):
            await first_on_v1.wait()
        add_version(store_root)
        registered_at = time.monotonic()
        async with asyncio.timeout(20):
            await first_on_v2.wait()
        switched_after_s = time.monotonic() - registered_at
        # Keep the load on while requests accepted by version 1 drain.
        async with asyncio.timeout(20):
            await many_on_v2.wait()
        stop.set()
        replies = await run

    assert [] == [r for r in replies if r.status != 200]
    assert {"1", "2"} == {r.model_version for r in replies}
    assert switched_after_s < 10.0, "the switch took longer than many poll intervals"
    assert "2" == max(replies, key=lambda r: r.sent_at).model_version


async def test_tampered_version_refused_previous_keeps_answering(
    tmp_path: Path, store_root: Path
) -> None:
    """A new version whose artifact bytes changed is refused; version 1 keeps answering."""
    env = {"PREDICTION_RELOAD_INTERVAL_S": "0.2", "PREDICTION_ADMIN_TOKEN": TOKEN}
    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
    ) as server:
        add_version(store_root, tampered=True)
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

            async def refused() -> bool:
                index = await client.get(
                    "/v2/repository/index", headers={"Authorization": f"Bearer {TOKEN}"}
                )
                return any(
                    e["version"] == "2" and e["state"] == "UNAVAILABLE" for e in index.json()
                )

            deadline = time.monotonic() + 20
            while not await refused():
                assert time.monotonic() < deadline, "the tampered version was never refused"
                await asyncio.sleep(0.1)
            response = await client.post("/predict", json=SETOSA)
            metrics = (await client.get("/metrics")).text

    assert (200, "1") == (response.status_code, response.headers["X-Model-Version"])
    assert 'prediction_model_loads_total{model="iris",outcome="checksum_mismatch"} 1.0' in metrics


async def test_repository_load_and_unload_under_load(tmp_path: Path, store_root: Path) -> None:
    """Loading and unloading models through the API under load fails no request for them."""
    env = {"PREDICTION_RELOAD_INTERVAL_S": "0", "PREDICTION_ADMIN_TOKEN": TOKEN}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
    ) as server:
        run = asyncio.create_task(
            load(server.url, connections=16, duration_s=8, max_requests=5_000, json_body=SETOSA)
        )
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            add_version(store_root)
            statuses = []
            for path in (
                "/v2/repository/models/diabetes/unload",
                "/v2/repository/models/iris/load",  # picks up version 2 under load
                "/v2/repository/models/diabetes/load",
                "/v2/repository/models/iris/load",
            ):
                statuses.append((await client.post(path, headers=auth)).status_code)
        replies = await run

    assert [200, 200, 200, 200] == statuses
    assert [] == [r for r in replies if r.status != 200]
    assert "2" == max(replies, key=lambda r: r.sent_at).model_version
