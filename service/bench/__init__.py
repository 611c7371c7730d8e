"""The side-by-side load benchmark behind ``python -m service bench`` and ``make bench``.

It trains two models into a temporary store, starts in turn the service and three comparison
servers on 127.0.0.1, drives each with ``wrk`` and writes a table, ratios, targets, a markdown
report and a PNG plot. Importing this package is cheap (the CLI builds its parser from
:mod:`service.bench.options`); the heavy parts import numpy, scikit-learn and matplotlib.
"""

from __future__ import annotations

__all__ = ["BenchError"]


class BenchError(RuntimeError):
    """Raised when the bench cannot run: a bad flag, a missing tool, a server that never came up."""
