"""Server (d): a minimal Quart app on Hypercorn that parses the body and answers a constant.

It is the framework ceiling no batching can beat: the same Quart, Hypercorn config, event loop
(uvloop when installed) and JSON library (orjson) as the service, no model, no middleware. With
``--workers N`` (N > 1) Hypercorn's own supervisor runs N spawned worker processes on shared
sockets, as the service does; with 1 it serves in this process. Run it as
``python -m bench.apps.bare_app --port P [--workers N]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Sequence

import orjson
from hypercorn.run import run
from quart import Quart
from quart import Response
from quart import request

from service.server import hypercorn_config
from service.settings import Settings

__all__ = ["app", "create_app", "main"]

# What the service answers for one row of a binary classifier, so the response sizes match.
_CONSTANT = orjson.dumps({"prediction": [0]})


def create_app() -> Quart:
    """The bare app: ``POST /predict`` reads and decodes the JSON body, then answers a constant."""
    bare = Quart(__name__)

    @bare.post("/predict")
    async def predict() -> Response:
        body = await request.get_data(cache=False)
        orjson.loads(body)
        return Response(_CONSTANT, mimetype="application/json")

    return bare


# What Hypercorn's spawned workers import (``application_path``).
app = create_app()


def _worker_class() -> str:
    # The service falls back to asyncio's loop the same way when uvloop is not installed.
    return "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the bare app on 127.0.0.1 until SIGTERM/SIGINT; Hypercorn's exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.apps.bare_app")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    # The service's own Hypercorn config, so the two differ only in what the app does.
    config = hypercorn_config(Settings(host="127.0.0.1", port=args.port))
    config.application_path = "bench.apps.bare_app:app"
    config.worker_class = _worker_class()
    # Hypercorn serves in this process with 0 workers, as the service does with 1.
    config.workers = 0 if args.workers == 1 else args.workers
    exit_code: int = run(config)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
