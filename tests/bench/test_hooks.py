"""The in-process tracing measurement: real apps answer, and the off path's checks are its own."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
from opentelemetry.sdk.trace import SpanProcessor

from bench.hooks import MIN_BLOCKS
from bench.hooks import no_checks
from bench.hooks import off_path_checks
from bench.hooks import per_request_s
from bench.hooks import tracing_micro
from service.http import create_app
from service.http.exchange import Exchange
from service.http.state import get_state
from service.settings import Settings
from service.tracing import start_tracing


def exchange() -> Exchange:
    return Exchange(
        method="POST",
        route="/predict",
        request_id="r-1",
        started_s=time.perf_counter(),
        headers={},
        query={},
    )


def test_the_off_path_checks_pass_on_an_untraced_app_and_fail_on_a_traced_one(
    store_root: Path,
) -> None:
    """The checks are timed on an app whose tracing is off; on a traced app they refuse to run,
    so they can only ever measure the untraced path."""
    settings = Settings(model_store=store_root)
    untraced = get_state(create_app(settings))
    traced = get_state(create_app(settings, tracing=start_tracing(processors=[SpanProcessor()])))

    checks_s = per_request_s(off_path_checks, untraced, exchange(), loops=1)
    stub_s = per_request_s(no_checks, untraced, exchange(), loops=1)

    assert checks_s > 0
    assert stub_s > 0
    with pytest.raises(AssertionError, match="tracing is on"):
        per_request_s(off_path_checks, traced, exchange(), loops=1)


def test_three_apps_answer_every_request_and_report_each_median(
    store_root: Path, tmp_path: Path
) -> None:
    """With no time budget, each app serves its warm-up and minimum blocks, all answered 200."""
    body = orjson.dumps({"features": [[5.1, 3.5, 1.4, 0.2]]})

    result = tracing_micro(store_root, "iris", body, budget_s=0.0, work_dir=tmp_path)

    assert result.model == "iris"
    assert result.blocks == MIN_BLOCKS
    assert min(result.off_s, result.off_again_s, result.on_s) > 0
    assert min(result.off_cpu_s, result.on_cpu_s, result.checks_s, result.stub_s) > 0
