"""SIGTERM under load: every request sent before the signal is answered, and the exit is clean."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import load
from tests.helpers import serve_process

SETOSA = {"features": [[5.1, 3.5, 1.4, 0.2]]}


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_under_load_answers_every_sent_request(
    tmp_path: Path, store_root: Path, figures: dict[str, str], workers: int
) -> None:
    """SIGTERM with 64 clients sending: every request sent before it gets 200 or 503; exit 0."""
    env = {
        "PREDICTION_WORKERS": str(workers),
        "PREDICTION_DRAIN_S": "1",
        "PREDICTION_RELOAD_INTERVAL_S": "0",
        "PREDICTION_ACCESS_LOG": "false",
    }
    with serve_process(
        tmp_path, "--model-store", str(store_root), "--default-model", "iris", env=env
    ) as server:
        answered = asyncio.Event()
        counted = 0

        def count(_: object) -> None:
            nonlocal counted
            counted += 1
            if counted >= 2000:
                answered.set()

        run = asyncio.create_task(
            load(
                server.url,
                connections=64,
                duration_s=30,
                max_requests=50_000,
                json_body=SETOSA,
                on_reply=count,
            )
        )
        async with asyncio.timeout(30):
            await answered.wait()  # the load is in full swing
        signalled_at = time.monotonic()
        os.kill(server.process.pid, signal.SIGTERM)
        exit_code = await asyncio.to_thread(server.process.wait, 60)
        replies = await run

    before = [r for r in replies if r.sent_at < signalled_at]
    failed = [r for r in before if r.status not in (200, 503)]
    figures[f"shutdown, {workers} worker(s)"] = (
        f"SIGTERM under 64 connections: {len(before)} requests sent before it, "
        f"{len(failed)} lost, exit code {exit_code}"
    )
    assert [] == failed
    assert 0 == exit_code
