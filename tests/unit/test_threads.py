"""Each worker's native thread pools are capped so that workers x threads fit the cores."""

from __future__ import annotations

import json
import subprocess
import sys

from service.engines.threads import threads_per_worker
from service.settings import Settings

PROBE = """
import json, logging
from threadpoolctl import threadpool_info
from service.engines.threads import fit_thread_pools
from service.settings import Settings
logging.basicConfig(level=logging.INFO, format="%(message)s")
threads = fit_thread_pools(Settings(workers=2, threads_per_worker={threads}))
print(json.dumps([threads, sorted({{pool["num_threads"] for pool in threadpool_info()}})]))
"""


def test_default_shares_the_cores_out() -> None:
    """Unset, each of N workers gets cores // N threads, and never fewer than one."""
    assert (4, 2, 1) == (
        threads_per_worker(Settings(workers=1), cores=4),
        threads_per_worker(Settings(workers=2), cores=4),
        threads_per_worker(Settings(workers=8), cores=4),
    )


def test_setting_wins() -> None:
    """PREDICTION_THREADS_PER_WORKER overrides the derived value."""
    assert 3 == threads_per_worker(Settings(workers=2, threads_per_worker=3), cores=4)


def test_pools_capped_and_logged() -> None:
    """After the cap every loaded pool (BLAS, OpenMP) runs the set number of threads, and a
    log line says so."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(threads=1)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    assert [1, [1]] == json.loads(result.stdout.splitlines()[-1])
    assert "native thread pools capped at 1 threads" in result.stderr
