"""Through the app, the tree engine answers byte for byte as scikit-learn does, batched or not."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from numpy.typing import NDArray
from sklearn.datasets import load_iris
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from service.http import create_app
from service.settings import Settings
from service.store import ModelStore

BURST = 16
BENCH = "bench_forest"


@pytest.fixture(name="forest_store_template", scope="module")
def _forest_store_template(
    demo_store_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The demo store plus the bench's RandomForest (100 trees, 20 features, same recipe)."""
    root = tmp_path_factory.mktemp("forest_store")
    shutil.copytree(demo_store_template, root, dirs_exist_ok=True)
    X, y = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    ModelStore(root).save(model, BENCH)
    return root


def _rows() -> dict[str, NDArray[np.float64]]:
    X, _ = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
    bench = np.concatenate([X[:40], np.random.default_rng(1).normal(size=(24, 20)) * 3])
    return {"iris": load_iris(return_X_y=True)[0][::2], BENCH: bench}


async def _answers(root: Path, engine: str, *, batched: bool) -> dict[str, Any]:
    """Every answer the app gives: /predict, /predict_proba and V2 infer, plus the engine."""
    settings = Settings(
        model_store=root,
        tree_engine=engine,
        reload_interval_s=0,
        # Batched: a burst of single-row requests fills one batch (a long wait, a batch the
        # size of the burst); unbatched: each request is its own model call.
        max_batch_rows=BURST if batched else 256,
        max_wait_ms=2000 if batched else 0,
    )
    app = create_app(settings)
    answers: dict[str, Any] = {}
    async with app.test_app():
        client = app.test_client()
        for name, rows in _rows().items():
            metadata = await (await client.get(f"/v2/models/{name}")).get_json()
            answers[f"{name} engine"] = metadata["parameters"]["engine"]
            for route in ("predict", "predict_proba"):
                if batched:
                    responses = await asyncio.gather(
                        *(
                            client.post(f"/{route}?model={name}", json={"features": [row]})
                            for row in rows[:BURST].tolist()
                        )
                    )
                else:
                    responses = [
                        await client.post(
                            f"/{route}?model={name}", json={"features": rows.tolist()}
                        )
                    ]
                answers[f"{name} {route}"] = [await r.get_data() for r in responses]
            if not batched:
                body = {
                    "inputs": [
                        {
                            "name": "input-0",
                            "shape": list(rows.shape),
                            "datatype": "FP64",
                            "data": rows.ravel().tolist(),
                        }
                    ],
                    "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
                }
                response = await client.post(f"/v2/models/{name}/infer", data=orjson.dumps(body))
                infer = await response.get_json()
                answers[f"{name} infer"] = [output["data"] for output in infer["outputs"]]
    return answers


@pytest.mark.parametrize("batched", [False, True], ids=["unbatched", "batched"])
async def test_engine_on_and_off_answer_alike(forest_store_template: Path, batched: bool) -> None:
    """The demo and bench RandomForests give identical responses with the engine on and off."""
    on = await _answers(forest_store_template, "auto", batched=batched)
    off = await _answers(forest_store_template, "off", batched=batched)

    assert ("trees", "trees") == (on["iris engine"], on[f"{BENCH} engine"])
    assert ("sklearn", "sklearn") == (off["iris engine"], off[f"{BENCH} engine"])
    engineless = {key: value for key, value in on.items() if not key.endswith("engine")}
    assert engineless == {key: value for key, value in off.items() if not key.endswith("engine")}
    assert b'"prediction"' in on["iris predict"][0]
