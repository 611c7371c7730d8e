"""The README's status table through the app: each client mistake, its status, a JSON error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from quart import Quart

from service.http import create_app
from service.settings import Settings
from tests.types import Client

JSON = {"Content-Type": "application/json"}
SETOSA = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture(name="settings")
def _settings(store_root: Path) -> Settings:
    # Small limits so the 413 cases need only small bodies.
    return Settings(
        model_store=store_root,
        default_model="iris",
        max_body_bytes=4096,
        max_request_rows=10,
        max_batch_rows=8,
        max_queue_rows=64,
    )


async def assert_error(response: object, status: int, fragment: str) -> None:
    """The response has ``status`` and a JSON ``{"error": ...}`` containing ``fragment``."""
    assert status == response.status_code  # type: ignore[attr-defined]
    body = await response.get_json()  # type: ignore[attr-defined]
    assert ["error"] == list(body)
    assert fragment in body["error"]
    assert "Traceback" not in body["error"]


async def post(client: Client, data: str | bytes, path: str = "/predict") -> object:
    return await client.post(path, data=data, headers=JSON)


class TestBadRequest:
    async def test_malformed_json(self, client: Client) -> None:
        """A body that is not JSON is a 400."""
        await assert_error(await post(client, "{features: 1}"), 400, "not valid JSON")

    async def test_truncated_json(self, client: Client) -> None:
        """A JSON body cut short is a 400."""
        await assert_error(await post(client, '{"features": [[5.1, 3.5'), 400, "not valid JSON")

    async def test_empty_body(self, client: Client) -> None:
        """An empty body is a 400."""
        await assert_error(await post(client, b""), 400, "empty")

    async def test_invalid_utf8(self, client: Client) -> None:
        """A body that is not UTF-8 is a 400."""
        await assert_error(await post(client, b'{"features": "\xff"}'), 400, "not valid JSON")

    async def test_empty_rows(self, client: Client) -> None:
        """No rows at all is a 400."""
        await assert_error(await post(client, '{"features": []}'), 400, "no rows")

    async def test_ragged_rows(self, client: Client) -> None:
        """Rows of different lengths are a 400 naming the short row."""
        body = '{"features": [[5.1, 3.5, 1.4, 0.2], [5.1, 3.5]]}'
        await assert_error(await post(client, body), 400, "Row 1 has 2 features")

    async def test_wrong_feature_count(self, client: Client) -> None:
        """A row with the wrong number of features is a 400 naming both counts."""
        await assert_error(
            await post(client, '{"features": [[1, 2, 3]]}'),
            400,
            "has 3 features; the model expects 4",
        )

    async def test_string_value(self, client: Client) -> None:
        """A string where a number belongs is a 400 naming the row and feature."""
        await assert_error(
            await post(client, '{"features": [[5.1, "3.5", 1.4, 0.2]]}'),
            400,
            "Row 0, feature 1 ('sepal_width'): '3.5' is not a number",
        )

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
    async def test_non_finite_literal(self, client: Client, literal: str) -> None:
        """NaN and Infinity (not JSON, but sent by some encoders) are a 400."""
        await assert_error(
            await post(client, f'{{"features": [[5.1, {literal}, 1.4, 0.2]]}}'), 400, "JSON"
        )

    async def test_overflowing_number(self, client: Client) -> None:
        """A number that overflows to infinity is a 400."""
        await assert_error(
            await post(client, '{"features": [[5.1, 1e999, 1.4, 0.2]]}'), 400, "infinity"
        )

    async def test_unknown_feature_name(self, client: Client) -> None:
        """An object row with a key that is no feature name is a 400 naming the key."""
        row = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "colour": 1}'
        body = f'{{"instances": [{row}]}}'
        await assert_error(await post(client, body), 400, "unknown feature 'colour'")

    async def test_wrong_shape(self, client: Client) -> None:
        """A body of the wrong shape is a 400 saying what is expected."""
        await assert_error(await post(client, '{"features": {"a": 1}}'), 400, "must be an array")

    async def test_bad_version_parameter(self, client: Client) -> None:
        """A version that is not a positive integer is a 400."""
        response = await client.post("/predict?version=latest", json={"features": SETOSA})
        await assert_error(response, 400, "positive integer")

    async def test_bad_timeout_header(self, client: Client) -> None:
        """An X-Request-Timeout-Ms that is not a positive number is a 400."""
        response = await client.post(
            "/predict", json={"features": SETOSA}, headers={"X-Request-Timeout-Ms": "-5"}
        )
        await assert_error(response, 400, "X-Request-Timeout-Ms")


class TestOtherClientErrors:
    async def test_wrong_content_type(self, client: Client) -> None:
        """A body declared as something other than JSON is a 415."""
        response = await client.post(
            "/predict", data="features=1", headers={"Content-Type": "text/plain"}
        )
        await assert_error(response, 415, "text/plain")

    async def test_curl_form_content_type(self, client: Client) -> None:
        """Unlike V2 and V1, the Flask routes refuse curl -d's form type with 415, as Flask does."""
        response = await client.post(
            "/predict",
            data='{"features": [5.1, 3.5, 1.4, 0.2]}',
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        await assert_error(response, 415, "application/x-www-form-urlencoded")

    async def test_missing_content_type(self, client: Client) -> None:
        """The Flask routes need a Content-Type, as Flask's get_json() does: 415."""
        response = await client.post("/predict", data='{"features": [5.1, 3.5, 1.4, 0.2]}')
        await assert_error(response, 415, "none")

    async def test_body_too_large(self, client: Client) -> None:
        """A body over PREDICTION_MAX_BODY_BYTES is a 413."""
        body = '{"features": [' + ", ".join(["[5.1, 3.5, 1.4, 0.2]"] * 300) + "]}"
        await assert_error(await post(client, body), 413, "too large")

    async def test_too_many_rows(self, client: Client) -> None:
        """More rows than PREDICTION_MAX_REQUEST_ROWS is a 413 naming the limit."""
        response = await client.post("/predict", json={"features": [SETOSA] * 11})
        await assert_error(response, 413, "11 rows; at most 10")

    async def test_unknown_model(self, client: Client) -> None:
        """An unknown model is a 404 naming it."""
        response = await client.post("/predict?model=nope", json={"features": SETOSA})
        await assert_error(response, 404, "'nope'")

    async def test_unknown_version(self, client: Client) -> None:
        """A version that is not loaded is a 404 naming it."""
        response = await client.post("/predict?version=7", json={"features": SETOSA})
        await assert_error(response, 404, "Version 7 of model 'iris'")

    async def test_unknown_route(self, client: Client) -> None:
        """An unknown route is a 404 with the JSON error shape."""
        await assert_error(await client.get("/nope"), 404, "No such route")

    async def test_wrong_method(self, client: Client) -> None:
        """GET on a POST route is a 405 with the JSON error shape and an Allow header."""
        response = await client.get("/predict")
        await assert_error(response, 405, "not allowed")
        assert "POST" in response.headers["Allow"]

    async def test_proba_of_regressor(self, client: Client) -> None:
        """predict_proba on a regressor is a 400 saying it has no such output."""
        response = await client.post(
            "/predict_proba?model=diabetes", json={"features": [[0.0] * 10]}
        )
        await assert_error(response, 400, "no output 'predict_proba'")


async def test_still_correct_after_errors(client: Client) -> None:
    """After a burst of bad requests the server still answers a good one correctly."""
    for data in ["{", "[]", '{"features": [[1]]}', '{"features": [["x", 1, 2, 3]]}']:
        await post(client, data)

    response = await client.post("/predict", json={"features": [SETOSA]})

    assert {"prediction": [0]} == await response.get_json()


@pytest.fixture(name="two_models_app")
async def _two_models_app(store_root: Path) -> AsyncIterator[Quart]:
    app = create_app(Settings(model_store=store_root))
    async with app.test_app():
        yield app


async def test_model_name_required_with_several_models(two_models_app: Quart) -> None:
    """With several models and no default, /predict without ?model= is a 400 listing them."""
    response = await two_models_app.test_client().post("/predict", json={"features": SETOSA})

    await assert_error(response, 400, "diabetes, iris, loans")
