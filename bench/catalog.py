"""The names the bench uses for its servers and models, and how reports label them."""

from __future__ import annotations

from typing import Final

__all__ = [
    "BARE",
    "BARE_ONE",
    "DEFAULT_SERVERS",
    "FLASK",
    "FLASK_GTHREAD",
    "LOGREG",
    "MODEL_LABELS",
    "MODEL_PATHS_ENV",
    "RANDOM_FOREST",
    "SERVERS",
    "SERVER_LABELS",
    "SERVICE",
    "SERVICES",
    "SERVICE_313",
    "SERVICE_TRACED",
    "TRACING_CONNECTIONS",
    "TRACING_MODEL",
]

SERVICE: Final = "service"
SERVICE_313: Final = "service-3.13"
SERVICE_TRACED: Final = "service-traced"
FLASK: Final = "flask"
FLASK_GTHREAD: Final = "flask-2x8"
BARE: Final = "bare"
BARE_ONE: Final = "bare-1"

# (a) is measured against (b), (c) and (d); (a) on Python 3.13 is a second (a) row, (a) with
# tracing on a third (against (a), whose tracing is off), and (d) in one process (as it ran
# before it matched the service's worker count) a second (d) row.
SERVERS: Final[tuple[str, ...]] = (
    SERVICE,
    SERVICE_313,
    SERVICE_TRACED,
    FLASK,
    FLASK_GTHREAD,
    BARE,
    BARE_ONE,
)
# The one-process (d) is left out by default: it adds a fifth of the run time.
DEFAULT_SERVERS: Final[tuple[str, ...]] = tuple(server for server in SERVERS if server != BARE_ONE)
# The servers that run this project's code (and have its /metrics).
SERVICES: Final = frozenset({SERVICE, SERVICE_313, SERVICE_TRACED})
SERVER_LABELS: Final[dict[str, str]] = {
    SERVICE: "(a) service",
    SERVICE_313: "(a) service, Python 3.13",
    SERVICE_TRACED: "(a) service, tracing on",
    FLASK: "(b) Flask, gunicorn 1 sync",
    FLASK_GTHREAD: "(c) Flask, gunicorn 2x8 gthread",
    BARE: "(d) bare Quart+Hypercorn",
    BARE_ONE: "(d) bare Quart+Hypercorn, 1 process",
}

RANDOM_FOREST: Final = "rf"
LOGREG: Final = "logreg"
MODEL_LABELS: Final[dict[str, str]] = {
    RANDOM_FOREST: "RandomForest",
    LOGREG: "LogisticRegression",
}

# How the tutorial Flask app finds the artifacts: ``name=path,name=path``.
MODEL_PATHS_ENV: Final = "BENCH_MODEL_PATHS"

# What (a) with tracing on measures, beside (a): the cheapest model (where tracing's share of a
# request is largest) at one connection and at 64, single-row requests only. That is enough to
# compare tracing off and on, and keeps the row to under a minute of the run.
TRACING_MODEL: Final = LOGREG
TRACING_CONNECTIONS: Final = (1, 64)
