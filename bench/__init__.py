"""The side-by-side load benchmark behind ``python -m bench`` and ``make bench``.

It is a development tool, not part of the service: it lives beside ``service/``, is not in the
wheel or the image, and nothing under ``service/`` imports it. It trains two models into a
temporary store, starts in turn the service and the comparison servers on 127.0.0.1, drives
each with ``wrk``, times each model's ``predict`` in-process, and writes a table, ratios,
targets, a markdown report and a PNG plot. Importing this package and :mod:`bench.options` is
cheap; the heavy parts import numpy, scikit-learn and matplotlib when they run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["CHECKOUT", "BenchError"]

# The checkout the bench belongs to: it holds pyproject.toml, service/ and bench/.
CHECKOUT: Final = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """Raised when the bench cannot run: a bad flag, a missing tool, a server that never came up."""
