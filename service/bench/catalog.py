"""The names the bench uses for its servers and models, and how reports label them."""

from __future__ import annotations

from typing import Final

__all__ = [
    "BARE",
    "FLASK",
    "FLASK_GTHREAD",
    "LOGREG",
    "MODEL_LABELS",
    "MODEL_PATHS_ENV",
    "RANDOM_FOREST",
    "SERVERS",
    "SERVER_LABELS",
    "SERVICE",
]

SERVICE: Final = "service"
FLASK: Final = "flask"
FLASK_GTHREAD: Final = "flask-2x8"
BARE: Final = "bare"

# In the order: (a) is measured against (b), (c) and (d).
SERVERS: Final[tuple[str, ...]] = (SERVICE, FLASK, FLASK_GTHREAD, BARE)
SERVER_LABELS: Final[dict[str, str]] = {
    SERVICE: "(a) service",
    FLASK: "(b) Flask, gunicorn 1 sync",
    FLASK_GTHREAD: "(c) Flask, gunicorn 2x8 gthread",
    BARE: "(d) bare Quart+Hypercorn",
}

RANDOM_FOREST: Final = "rf"
LOGREG: Final = "logreg"
MODEL_LABELS: Final[dict[str, str]] = {
    RANDOM_FOREST: "RandomForest",
    LOGREG: "LogisticRegression",
}

# How the tutorial Flask app finds the artifacts: ``name=path,name=path``.
MODEL_PATHS_ENV: Final = "BENCH_MODEL_PATHS"
