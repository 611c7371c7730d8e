"""The start-up summary: one record saying where the server listens and what it serves.

It is built from plain data (the settings, the bound address, what a worker reports it loaded),
so the supervisor logs it without importing the app, scikit-learn or numpy. With several workers
only the supervisor logs it, once every worker has started.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from service.logs import SUMMARY_FIELD
from service.settings import Settings

__all__ = ["ServedModel", "changed_settings", "log_summary", "server_url"]

log = logging.getLogger("service")

# Shown in the summary's headline or its models row, so not repeated among the settings.
_SHOWN_ELSEWHERE = frozenset(
    {"PREDICTION_HOST", "PREDICTION_PORT", "PREDICTION_WORKERS", "PREDICTION_MODEL_STORE"}
)
_SECRET = frozenset({"PREDICTION_ADMIN_TOKEN"})


@dataclass(frozen=True, slots=True)
class ServedModel:
    """One model version a worker serves; ``engine`` is the engine that runs it, when known."""

    name: str
    version: int
    engine: str | None = None


def server_url(host: str, port: int) -> str:
    """The base URL of ``host:port`` (IPv6 addresses in brackets)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def changed_settings(settings: Settings) -> dict[str, str]:
    """The ``PREDICTION_*`` settings whose value is not the default, secrets hidden."""
    defaults = Settings().to_env()
    current = settings.to_env()
    changed: dict[str, str] = {}
    for name in sorted(defaults.keys() | current.keys()):
        value = current.get(name, "")
        if name in _SHOWN_ELSEWHERE or value == defaults.get(name, ""):
            continue
        changed[name] = "<hidden>" if name in _SECRET and value else value
    return changed


def log_summary(settings: Settings, port: int, models: Sequence[ServedModel]) -> None:
    """Log the start-up summary, and a warning when no model is being served yet."""
    url = server_url(settings.host, port)
    store = str(settings.model_store.absolute())
    workers = settings.workers
    summary: dict[str, object] = {
        "address": url,
        "workers": workers,
        "store": store,
        "models": [
            {"name": m.name, "version": m.version, **({"engine": m.engine} if m.engine else {})}
            for m in models
        ],
        "docs": f"{url}/docs",
        "metrics": f"{url}/metrics",
        "readyz": f"{url}/readyz",
        "settings": changed_settings(settings),
    }
    log.info(
        "serving %s with %d worker%s",
        url,
        workers,
        "" if workers == 1 else "s",
        extra={SUMMARY_FIELD: summary},
    )
    if not models:
        if settings.reload_interval_s > 0:
            until = f"the store is read again every {settings.reload_interval_s:g} s"
        else:
            until = "PREDICTION_RELOAD_INTERVAL_S is 0: send SIGHUP to read it again"
        log.warning(
            "no valid model in %s; /readyz answers 503 until one loads (%s)",
            store,
            until,
        )
