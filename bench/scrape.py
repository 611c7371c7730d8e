"""The service's own view of a run: ``prediction_batch_rows`` totals from its ``/metrics``.

Scraped before and after each measured run; the delta of ``_sum`` over the delta of ``_count``
is the mean rows per model call during that run. Parsing is a pure function of the text.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Final

__all__ = ["BatchRows", "mean_batch_rows", "parse_batch_rows", "scrape_batch_rows"]

_SAMPLE: Final = re.compile(
    r'^prediction_batch_rows_(sum|count)\{(?:[^}]*,)?model="([^"]*)"(?:,[^}]*)?\}\s+(\S+)',
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class BatchRows:
    """Totals of the ``prediction_batch_rows`` histogram of one model."""

    rows: float
    batches: float


def parse_batch_rows(text: str, model: str) -> BatchRows:
    """The histogram's ``_sum`` and ``_count`` for ``model`` in Prometheus text; 0 when absent."""
    totals = {"sum": 0.0, "count": 0.0}
    for match in _SAMPLE.finditer(text):
        kind, name, value = match.groups()
        if name == model:
            totals[kind] += float(value)
    return BatchRows(rows=totals["sum"], batches=totals["count"])


def mean_batch_rows(before: BatchRows, after: BatchRows) -> float | None:
    """Mean rows per model call between two scrapes; None when no batch ran in between."""
    batches = after.batches - before.batches
    if batches <= 0:
        return None
    return (after.rows - before.rows) / batches


def scrape_batch_rows(base_url: str, model: str, *, timeout_s: float = 10.0) -> BatchRows | None:
    """Scrape ``base_url``/metrics; None when the server has no such endpoint or did not answer."""
    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=timeout_s) as response:
            text = response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError):
        return None
    return parse_batch_rows(text, model)
