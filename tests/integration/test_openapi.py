"""``/openapi.json`` documents every route, ``/docs`` renders it, and a live server keeps to it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings
from quart import Quart
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance
from schemathesis.specs.openapi.checks import negative_data_rejection
from schemathesis.specs.openapi.checks import response_headers_conformance
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.specs.openapi.checks import status_code_conformance

from service.http.openapi import openapi_document
from tests.helpers import ServerProcess
from tests.helpers import serve_process
from tests.types import Client

HTTP_METHODS = {"GET", "PUT", "POST", "DELETE", "PATCH"}
_CONVERTER = re.compile(r"<(?:[^<>]*:)?([A-Za-z_][A-Za-z0-9_]*)>")


def openapi_path(rule: str) -> str:
    """A Werkzeug rule as an OpenAPI path template: ``<name>`` and ``<int:v>`` become ``{…}``."""
    return _CONVERTER.sub(r"{\1}", rule)


async def document(client: Client) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    body: dict[str, Any] = await response.get_json()
    return body


async def test_every_route_is_documented(app: Quart, client: Client) -> None:
    """The document's operations are exactly the app's routes and methods."""
    routes = {
        (openapi_path(rule.rule), method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) & HTTP_METHODS
    }

    documented = {
        (path, method.upper())
        for path, operations in (await document(client))["paths"].items()
        for method in operations
        if method.upper() in HTTP_METHODS
    }

    assert routes == documented


async def test_document_is_openapi_3(client: Client) -> None:
    """The document is OpenAPI 3.0 (what Swagger UI 4 renders) with every $ref resolvable."""
    doc = await document(client)

    refs: list[str] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    def resolve(pointer: str) -> object:
        node: Any = doc
        for part in pointer.removeprefix("#/").split("/"):
            node = node[part]
        return node

    collect(doc)
    unresolved = [ref for ref in refs if not _resolves(resolve, ref)]

    assert ("3.0.3", []) == (doc["openapi"], unresolved)


def _resolves(resolve: Any, ref: str) -> bool:
    try:
        resolve(ref)
    except KeyError:
        return False
    return True


async def test_operations_document_errors(client: Client) -> None:
    """Every operation that takes a body documents 400, 413 and 415; all have a 200."""
    paths = (await document(client))["paths"]

    missing = {
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method, operation in operations.items()
        if "200" not in operation["responses"]
        or (
            operation.get("requestBody", {}).get("required")
            and not {"400", "413", "415"} <= set(operation["responses"])
        )
    }

    assert set() == missing


async def test_docs_page(client: Client) -> None:
    """/docs is an HTML page that renders /openapi.json with Swagger UI."""
    response = await client.get("/docs")
    page = await response.get_data(as_text=True)

    assert (200, "text/html", True, True) == (
        response.status_code,
        response.mimetype,
        'url: "openapi.json"' in page,
        "swagger-ui-bundle.js" in page,
    )


@pytest.mark.parametrize(
    ("asset", "mimetype"),
    [("swagger-ui.css", "text/css"), ("swagger-ui-bundle.js", "application/javascript")],
)
async def test_docs_assets_served_offline(client: Client, asset: str, mimetype: str) -> None:
    """Swagger UI's files come from the installed package, so /docs needs no network."""
    page = await (await client.get("/docs")).get_data(as_text=True)
    response = await client.get(f"/docs/static/{asset}")

    assert (True, 200, mimetype, True) == (
        f'"docs/static/{asset}"' in page,
        response.status_code,
        response.mimetype,
        len(await response.get_data()) > 1000,
    )


async def test_unknown_docs_asset(client: Client) -> None:
    """Only Swagger UI's two files are served; anything else is 404."""
    response = await client.get("/docs/static/package.json")

    assert 404 == response.status_code


# --- The live server against its own document (schemathesis) -------------------------------


@pytest.fixture(name="live_server", scope="module")
def _live_server(
    demo_store_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from _serve_demo_store(demo_store_template, tmp_path_factory, default_model="iris")


def _serve_demo_store(
    template: Path, tmp_path_factory: pytest.TempPathFactory, *, default_model: str
) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp(f"openapi-{default_model}") / "model_store"
    shutil.copytree(template, root)
    logs = tmp_path_factory.mktemp(f"openapi-{default_model}-logs")
    # No PREDICTION_ADMIN_TOKEN: the repository routes answer 403, a documented response.
    with serve_process(
        logs, "--model-store", str(root), "--default-model", default_model
    ) as server:
        yield server


def test_live_document_is_the_tested_one(live_server: ServerProcess) -> None:
    """The live server serves the very document the schemathesis run below is generated from."""
    served = httpx.get(f"{live_server.url}/openapi.json", timeout=10).json()

    assert orjson.loads(orjson.dumps(openapi_document())) == served


# Generated from the document the server serves (checked just above) rather than fetched from the
# live server: schemathesis' lazy fixture loader (from_fixture) uses pytest internals removed in
# pytest 9 (Node._nodeid), and a schema known at collection time gives one test per operation.
schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=schemathesis.Config.from_dict(
        # 504 is the documented answer to a deadline the client itself set too short
        # (X-Request-Timeout-Ms: 5e-324), 503 to load shedding (README status table);
        # neither is a server fault.
        {
            "checks": {
                "not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503", "504"]}
            }
        }
    ),
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_keeps_to_its_document(
    case: schemathesis.Case[Any], live_server: ServerProcess
) -> None:
    """Generated requests to every route get no 5xx and responses that match the document."""
    case.call_and_validate(base_url=live_server.url, checks=CHECKS)


@pytest.fixture(name="loans_server", scope="module")
def _loans_server(
    demo_store_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    yield from _serve_demo_store(demo_store_template, tmp_path_factory, default_model="loans")


@schema.include(tag="Flask-compatible").parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_table_model_keeps_to_the_document(
    case: schemathesis.Case[Any], loans_server: ServerProcess
) -> None:
    """Generated rows of strings, booleans and nulls sent to a table model (the default model
    here) get no 5xx and responses that match the document."""
    case.call_and_validate(base_url=loans_server.url, checks=CHECKS)
