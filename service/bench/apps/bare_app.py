"""Server (d): a minimal Quart app on Hypercorn that parses the body and answers a constant.

It is the framework ceiling no batching can beat: the same Quart, Hypercorn config, uvloop and
JSON library (orjson) as the service, one process, no model, no middleware. Run it as
``python -m service.bench.apps.bare_app --port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable
from collections.abc import Sequence

import orjson
from hypercorn.asyncio import serve
from quart import Quart
from quart import Response
from quart import request

from service.server import hypercorn_config
from service.settings import Settings

__all__ = ["create_app", "main"]

# What the service answers for one row of a binary classifier, so the response sizes match.
_CONSTANT = orjson.dumps({"prediction": [0]})


def create_app() -> Quart:
    """The bare app: ``POST /predict`` reads and decodes the JSON body, then answers a constant."""
    app = Quart(__name__)

    @app.post("/predict")
    async def predict() -> Response:
        body = await request.get_data(cache=False)
        orjson.loads(body)
        return Response(_CONSTANT, mimetype="application/json")

    return app


async def _serve(port: int) -> None:
    # The service's own Hypercorn config, so the two differ only in what the app does.
    config = hypercorn_config(Settings(host="127.0.0.1", port=port))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await serve(create_app(), config, shutdown_trigger=stop.wait)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the bare app on 127.0.0.1 until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m service.bench.apps.bare_app")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop
    except ImportError:  # the service falls back to asyncio the same way
        pass
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_serve(args.port))


if __name__ == "__main__":
    main()
