"""Thread pools that fit the workers: BLAS and OpenMP pools capped so workers x threads <= cores.

Each worker process is its own copy of every native thread pool (OpenBLAS, the OpenMP runtime that
``HistGradientBoosting`` uses). Left alone, each sizes itself to the whole machine, so N workers
run N x cores threads that preempt each other mid-batch. :func:`fit_thread_pools` runs once at the
start of each worker, on its main thread, before any model loads.
"""

from __future__ import annotations

import logging
import os

from threadpoolctl import threadpool_info
from threadpoolctl import threadpool_limits

from service.settings import Settings

__all__ = ["available_cores", "fit_thread_pools", "threads_per_worker"]

log = logging.getLogger(__name__)

# Read by OpenMP and BLAS runtimes when they load, for libraries imported after the cap.
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, where the OS reports it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_worker(settings: Settings, cores: int | None = None) -> int:
    """``PREDICTION_THREADS_PER_WORKER`` if set, else the cores shared out among the workers."""
    if settings.threads_per_worker is not None:
        return settings.threads_per_worker
    return max(1, (cores or available_cores()) // settings.workers)


def fit_thread_pools(settings: Settings) -> int:
    """Cap this process's native thread pools to :func:`threads_per_worker`; log and return it."""
    cores = available_cores()
    threads = threads_per_worker(settings, cores)
    for name in _THREAD_ENV:
        os.environ[name] = str(threads)
    # Load scikit-learn's OpenMP runtime now, so the cap below reaches it too.
    import sklearn.ensemble  # noqa: F401

    threadpool_limits(limits=threads)
    pools = sorted({f"{pool['internal_api']}={pool['num_threads']}" for pool in threadpool_info()})
    log.info(
        "worker %d: native thread pools capped at %d threads (%d workers, %d cores): %s",
        os.getpid(),
        threads,
        settings.workers,
        cores,
        ", ".join(pools) or "none loaded",
    )
    return threads
