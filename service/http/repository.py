"""The model repository API (an Open Inference Protocol extension): index, load and unload.

Every route needs ``Authorization: Bearer <PREDICTION_ADMIN_TOKEN>``; without a configured token
the routes answer 403, with a missing or wrong one 401.
"""

from __future__ import annotations

import hmac

from quart import Blueprint
from quart import Response
from quart import request

from service.errors import AuthenticationError
from service.errors import ForbiddenError
from service.http.responses import json_response
from service.http.state import get_state

__all__ = ["blueprint"]

blueprint = Blueprint("repository", __name__)


@blueprint.before_request
async def _authorize() -> None:
    token = get_state().settings.admin_token
    if token is None:
        raise ForbiddenError()
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    # compare_digest takes the same time wherever the strings differ: no timing oracle.
    if scheme.lower() != "bearer" or not hmac.compare_digest(sent.encode(), token.encode()):
        raise AuthenticationError()


@blueprint.route("/v2/repository/index", methods=["GET", "POST"])
async def index() -> Response:
    """Every version the server knows: READY when served, UNAVAILABLE (with why) when refused."""
    entries = get_state().registry.index()
    return json_response(
        [
            {"name": e.name, "version": str(e.version), "state": e.state, "reason": e.reason}
            for e in entries
        ]
    )


@blueprint.post("/v2/repository/models/<name>/load")
async def load(name: str) -> Response:
    """Load (or reload) the newest valid versions of ``name`` from the store now."""
    await get_state().registry.load_model(name)
    return json_response({})


@blueprint.post("/v2/repository/models/<name>/unload")
async def unload(name: str) -> Response:
    """Stop serving ``name`` once its accepted requests finish; polling will not reload it."""
    await get_state().registry.unload_model(name)
    return json_response({})
