"""Safe artifacts on a real server: refused pickles and untrusted types never run, and skops
versions answer exactly as the joblib versions they replace."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io
from numpy.typing import NDArray
from sklearn.datasets import load_diabetes
from sklearn.datasets import load_iris
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from service.store import Manifest
from service.store import ModelStore
from tests.custom_types import CLIP
from tests.custom_types import MARKER_ON_LOAD
from tests.custom_types import Clip
from tests.custom_types import MarkerOnLoad
from tests.helpers import serve_process
from tests.unit.test_store_trust import crafted_joblib_version
from tests.unit.test_store_trust import write_version

TOKEN = "s3cret-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}
DEADLINE_S = 20.0


def loads_counted(client: httpx.Client, model: str, outcome: str) -> float:
    """``prediction_model_loads_total`` for ``model`` and ``outcome`` (0 when absent)."""
    text = client.get("/metrics").text
    pattern = rf'^prediction_model_loads_total{{model="{model}",outcome="{outcome}"}} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds, failing after DEADLINE_S seconds."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        # Polling a condition with a bounded deadline, not sleeping in place of a signal.
        time.sleep(0.05)


@pytest.fixture(name="forest", scope="module")
def _forest() -> Any:
    features, target = load_iris(return_X_y=True)
    return RandomForestClassifier(n_estimators=5, random_state=0).fit(features, target)


def test_refused_pickle_never_runs_at_start_on_sighup_or_through_the_api(
    tmp_path: Path, store_root: Path, forest: Any
) -> None:
    """With PREDICTION_ALLOW_PICKLE=false a crafted pickle is refused and counted at start-up,
    on a SIGHUP reload and on a repository API load, its code never runs, and the version
    before it keeps serving."""
    marker = tmp_path / "marker"
    crafted_joblib_version(store_root, marker, forest)
    env = {
        "PREDICTION_ALLOW_PICKLE": "false",
        "PREDICTION_ADMIN_TOKEN": TOKEN,
        # No polling: only SIGHUP and the API make the server read the store again.
        "PREDICTION_RELOAD_INTERVAL_S": "3600",
    }
    with (
        serve_process(
            tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
        ) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        started = loads_counted(client, "evil", "untrusted")

        # As iris version 2, after the good version 1.
        crafted_joblib_version(store_root, marker, forest, name="iris", version=2)
        server.process.send_signal(signal.SIGHUP)
        wait_until(lambda: loads_counted(client, "iris", "untrusted") == 1, "SIGHUP refused it")
        served = client.post("/predict", json=SETOSA)

        loaded = client.post("/v2/repository/models/evil/load", headers=AUTH)
        through_api = loads_counted(client, "evil", "untrusted")
        log = server.log()

    assert not marker.exists()
    assert (1.0, 2.0) == (started, through_api)
    assert (200, "1") == (served.status_code, served.headers["X-Model-Version"])
    assert 404 == loaded.status_code
    assert "refused model evil version 1" in log
    assert "PREDICTION_ALLOW_PICKLE=false" in log


def test_crafted_skops_is_refused_before_it_runs(tmp_path: Path, store_root: Path) -> None:
    """A skops file naming an untrusted type is refused, logged with its name, counted, and
    nothing of it runs."""
    marker = tmp_path / "marker"
    model = LinearRegression().fit(np.eye(4), np.arange(4.0))
    model.hook = MarkerOnLoad(str(marker))
    manifest = Manifest.describe(model, name="hooked", version=1, sha256="0" * 64)
    write_version(store_root, "hooked", 1, skops.io.dumps(model), manifest)

    with (
        serve_process(tmp_path, "--model-store", str(store_root), "--default-model", "iris") as s,
        httpx.Client(base_url=s.url, timeout=10) as client,
    ):
        counted = loads_counted(client, "hooked", "untrusted")
        log = s.log()

    assert not marker.exists()
    assert 1.0 == counted
    assert MARKER_ON_LOAD in log


def test_user_transformer_served_once_trusted(tmp_path: Path, store_root: Path) -> None:
    """A model holding a user's own class is refused until PREDICTION_TRUSTED_TYPES lists the
    class, then served."""
    features, target = load_iris(return_X_y=True)
    model = make_pipeline(Clip(0.5, 6.0), LogisticRegression(max_iter=500)).fit(features, target)
    ModelStore(store_root, trusted_types=[CLIP]).save(model, "clipped")
    body = {"features": features[:5].tolist()}

    with (
        serve_process(tmp_path, "--model-store", str(store_root), "--default-model", "iris") as s,
        httpx.Client(base_url=s.url, timeout=10) as client,
    ):
        refused = client.post("/predict?model=clipped", json=body).status_code
        counted = loads_counted(client, "clipped", "untrusted")
    env = {"PREDICTION_TRUSTED_TYPES": f"some.other.Type,{CLIP}"}
    with (
        serve_process(
            tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
        ) as s,
        httpx.Client(base_url=s.url, timeout=10) as client,
    ):
        trusted = client.post("/predict?model=clipped", json=body)

    assert (404, 1.0) == (refused, counted)
    assert 200 == trusted.status_code
    assert model.predict(features[:5]).tolist() == trusted.json()["prediction"]


# ------------------------------------------------------------------- skops answers as joblib


def _bench_models() -> dict[str, tuple[Any, NDArray[np.float64]]]:
    """Models like the bench's: a 100-tree forest and a logistic regression on 20 features."""
    X, y = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
    return {
        "forest": (RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y), X[:256]),
        "logreg": (LogisticRegression(max_iter=1000).fit(X, y), X[:256]),
    }


@pytest.fixture(name="parity_store")
def _parity_store(store_root: Path) -> dict[str, NDArray[np.float64]]:
    """Every demo and bench model twice: ``<name>`` as skops and ``<name>-joblib`` as joblib."""
    store = ModelStore(store_root)
    demo = store.load("iris", 1).model
    store.save(demo, "iris-joblib", format="joblib")
    store.save(store.load("diabetes", 1).model, "diabetes-joblib", format="joblib")
    rows = {
        "iris": load_iris(return_X_y=True)[0],
        "diabetes": load_diabetes(return_X_y=True)[0][:256],
    }
    for name, (model, X) in _bench_models().items():
        store.save(model, name)
        store.save(model, f"{name}-joblib", format="joblib")
        rows[name] = X
    return rows


async def test_skops_versions_answer_as_joblib_ones_batched(
    tmp_path: Path, store_root: Path, parity_store: dict[str, NDArray[np.float64]]
) -> None:
    """Through the server, with many concurrent requests batched together, every skops model
    answers exactly what its joblib copy answers (predict and predict_proba)."""
    env = {"PREDICTION_MAX_WAIT_MS": "5"}

    async def answers(client: httpx.AsyncClient, name: str, X: NDArray[np.float64]) -> list[Any]:
        outputs = [{"name": "predict"}]
        if name not in ("diabetes", "diabetes-joblib"):
            outputs.append({"name": "predict_proba"})
        chunks = [X[start : start + 8] for start in range(0, len(X), 8)]
        replies = await asyncio.gather(
            *(
                client.post(
                    f"/v2/models/{name}/infer",
                    json={
                        "inputs": [
                            {
                                "name": "input-0",
                                "shape": list(chunk.shape),
                                "datatype": "FP64",
                                "data": chunk.ravel().tolist(),
                            }
                        ],
                        "outputs": outputs,
                    },
                )
                for chunk in chunks
            )
        )
        assert {200} == {reply.status_code for reply in replies}
        return [reply.json()["outputs"] for reply in replies]

    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
    ) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            for name, X in parity_store.items():
                skops_answers, joblib_answers = await asyncio.gather(
                    answers(client, name, X), answers(client, f"{name}-joblib", X)
                )
                assert joblib_answers == skops_answers, name
