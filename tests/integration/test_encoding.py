"""Compressed bodies on every prediction route, through both serving layers: gzip and deflate
request bodies, the inflated size limit, unknown codings, and compressed responses."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from quart import Quart

from service.http import create_app
from service.settings import Settings
from tests.integration.conftest import serve_through
from tests.types import Client

SETOSA = [5.1, 3.5, 1.4, 0.2]
MAX_BODY_BYTES = 64 * 1024


def v2_body(rows: list[list[float]]) -> dict[str, Any]:
    flat = [value for row in rows for value in row]
    return {
        "inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": flat}]
    }


# Each prediction route, its JSON body for ``rows`` and how to read its answers.
ROUTES: dict[str, tuple[str, Callable[[list[list[float]]], object], Callable[[Any], object]]] = {
    "predict": ("/predict", lambda rows: {"features": rows}, lambda r: r["prediction"]),
    "predict_proba": (
        "/predict_proba",
        lambda rows: {"features": rows},
        lambda r: np.round(r["probabilities"], 12).tolist(),
    ),
    "v2": ("/v2/models/iris/infer", v2_body, lambda r: r["outputs"][0]["data"]),
    "v1": ("/v1/models/iris:predict", lambda rows: {"instances": rows}, lambda r: r["predictions"]),
}
CODINGS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.compress, "deflate": zlib.compress}


@pytest.fixture(name="settings")
def _settings(store_root: Path) -> Settings:
    return Settings(
        model_store=store_root,
        default_model="iris",
        max_body_bytes=MAX_BODY_BYTES,
        gzip_min_bytes=512,
    )


async def post(
    client: Client, route: str, rows: list[list[float]], **headers: str
) -> tuple[Any, bytes]:
    """POST ``rows`` to ``route`` as JSON, encoded as the Content-Encoding header says."""
    path, body_of, _ = ROUTES[route]
    body = orjson.dumps(body_of(rows))
    coding = headers.get("Content-Encoding")
    if coding in CODINGS:
        body = CODINGS[coding](body)
    response = await client.post(
        path, data=body, headers={"Content-Type": "application/json", **headers}
    )
    return response, await response.get_data(as_text=False)


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("route", ROUTES)
async def test_compressed_request(client: Client, route: str, coding: str) -> None:
    """A gzip or deflate request body is answered as the same body uncompressed."""
    _, plain_body = await post(client, route, [SETOSA] * 3)
    packed, packed_body = await post(client, route, [SETOSA] * 3, **{"Content-Encoding": coding})

    read = ROUTES[route][2]
    assert (200, read(orjson.loads(plain_body))) == (
        packed.status_code,
        read(orjson.loads(packed_body)),
    )


@pytest.mark.parametrize("route", ROUTES)
async def test_gzip_bomb_is_413(client: Client, route: str) -> None:
    """A small gzip body that inflates past PREDICTION_MAX_BODY_BYTES is 413."""
    bomb = gzip.compress(b"[" + b" " * (16 * MAX_BODY_BYTES) + b"]", 9)
    assert len(bomb) < MAX_BODY_BYTES

    response = await client.post(
        ROUTES[route][0],
        data=bomb,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )

    assert (413, {"error": f"The request body inflates to more than {MAX_BODY_BYTES} bytes."}) == (
        response.status_code,
        await response.get_json(),
    )


@pytest.mark.parametrize("route", ROUTES)
async def test_unknown_coding_is_415(client: Client, route: str) -> None:
    """An unknown Content-Encoding is 415 with Accept-Encoding naming what is accepted."""
    response, body = await post(client, route, [SETOSA], **{"Content-Encoding": "br"})

    assert (
        415,
        "gzip, deflate",
        "Content-Encoding 'br' is not supported; send gzip, deflate or identity.",
    ) == (response.status_code, response.headers["Accept-Encoding"], orjson.loads(body)["error"])


async def test_corrupt_gzip_is_400(client: Client) -> None:
    """A body that is not the gzip data it claims to be is 400 saying so."""
    response = await client.post(
        "/v2/models/iris/infer", data=b"\x1f\x8b", headers={"Content-Encoding": "gzip"}
    )

    assert (400, "The body is not valid gzip data: it ends too early.") == (
        response.status_code,
        (await response.get_json())["error"],
    )


async def test_compressed_binary_tensor_body(client: Client) -> None:
    """A binary tensor body compressed whole (tritonclient's way) is read after inflation."""
    raw = np.array([SETOSA, SETOSA]).astype("<f8").tobytes()
    header = orjson.dumps(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [2, 4],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ]
        }
    )

    response = await client.post(
        "/v2/models/iris/infer",
        data=gzip.compress(header + raw),
        headers={"Inference-Header-Content-Length": str(len(header)), "Content-Encoding": "gzip"},
    )

    assert [0, 0] == (await response.get_json())["outputs"][0]["data"]


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("route", ROUTES)
async def test_large_response_compressed(client: Client, route: str, coding: str) -> None:
    """A response of at least PREDICTION_GZIP_MIN_BYTES is compressed as Accept-Encoding
    allows, with Vary: Accept-Encoding, and decodes to the identity response."""
    rows = [SETOSA] * 500
    plain, plain_body = await post(client, route, rows)
    packed, packed_body = await post(client, route, rows, **{"Accept-Encoding": coding})

    decode = gzip.decompress if coding == "gzip" else zlib.decompress
    assert (coding, "Accept-Encoding") == (
        packed.headers.get("Content-Encoding"),
        packed.headers.get("Vary"),
    )
    assert plain_body == decode(packed_body)
    assert (None, len(packed_body)) == (
        plain.headers.get("Content-Encoding"),
        int(packed.headers["Content-Length"]),
    )


@pytest.mark.parametrize("route", ROUTES)
async def test_small_response_not_compressed(client: Client, route: str) -> None:
    """A response under PREDICTION_GZIP_MIN_BYTES is sent identity, still with Vary."""
    response, body = await post(client, route, [SETOSA], **{"Accept-Encoding": "gzip"})

    assert (200, None, "Accept-Encoding") == (
        response.status_code,
        response.headers.get("Content-Encoding"),
        response.headers.get("Vary"),
    )
    assert orjson.loads(body)


async def test_other_routes_compressed(client: Client) -> None:
    """The Quart routes (here /openapi.json) compress their large responses too."""
    plain = await client.get("/openapi.json")
    packed = await client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})

    assert ("gzip", await plain.get_data()) == (
        packed.headers.get("Content-Encoding"),
        gzip.decompress(await packed.get_data(as_text=False)),
    )


@pytest.fixture(name="uncompressed_app")
async def _uncompressed_app(store_root: Path, layer: str) -> AsyncIterator[Quart]:
    settings = Settings(model_store=store_root, default_model="iris", gzip_min_bytes=0)
    app = serve_through(create_app(settings), layer)
    async with app.test_app():
        yield app


@pytest.mark.parametrize("route", ROUTES)
async def test_compression_off(uncompressed_app: Quart, route: str) -> None:
    """PREDICTION_GZIP_MIN_BYTES=0 sends every response identity, without Vary."""
    client = uncompressed_app.test_client()

    response, _ = await post(client, route, [SETOSA] * 500, **{"Accept-Encoding": "gzip"})

    assert (200, None, None) == (
        response.status_code,
        response.headers.get("Content-Encoding"),
        response.headers.get("Vary"),
    )
