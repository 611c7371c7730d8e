"""The service's one frozen settings object, and the only reader of ``PREDICTION_*`` variables.

Every setting has an environment variable ``PREDICTION_<FIELD NAME IN UPPER CASE>`` and some a
CLI flag; the CLI's values win over the environment's. A bad value stops start-up with one line
naming the variable and the value (:class:`SettingsError`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

__all__ = ["ENV_PREFIX", "Settings", "SettingsError"]

ENV_PREFIX = "PREDICTION_"

# Unit constants, so defaults read as what they mean (Hypercorn's config does the same).
SECONDS = 1.0
MILLISECONDS = 1
BYTES = 1
MIB = 1024 * 1024 * BYTES

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_FORMATS = ("auto", "json", "console")
_TREE_ENGINES = ("auto", "off")
# A fully qualified Python name as skops reports it: module path and class or function name.
_DOTTED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")


class SettingsError(ValueError):
    """Raised when a setting has a value that cannot be used; the message is one line."""

    def __init__(self, name: str, value: object, expected: str) -> None:
        super().__init__(f"{ENV_PREFIX}{name.upper()} has value {value!r}; expected {expected}.")
        self.name = name


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the service can be configured with, validated on construction."""

    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` in containers."""
    port: int = 5000
    """TCP port to listen on."""
    workers: int = 2
    """Server processes, each with its own batchers. One process is bound by its event loop
    (HTTP parsing), not the model: on 2 cores, 2 workers measured 2.3x the throughput of one at
    64 connections with the same single-connection latency (README, Performance)."""
    model_store: Path = Path("model_store")
    """Root of the model store (``<name>/<version>/model.skops`` + ``model.json``)."""
    default_model: str | None = None
    """Model that ``/predict`` uses when no ``model`` is named; unset with one model: that one."""
    max_batch_rows: int = 256
    """Most rows in one model call."""
    max_wait_ms: float = 0.0 * MILLISECONDS
    """How long a batch may wait for more rows after its oldest row; 0 dispatches at once."""
    max_queue_rows: int = 8192
    """Rows queued per model version before requests are shed with 503."""
    max_concurrent_batches: int = 1
    """Model calls of one model version that may run at the same time."""
    max_request_rows: int = 1024
    """Most rows one request may carry (413 beyond)."""
    max_body_bytes: int = 4 * MIB
    """Largest request body accepted (413 beyond), before and after any Content-Encoding."""
    gzip_min_bytes: int = 1400 * BYTES
    """Smallest response body compressed (gzip or deflate) for a client whose Accept-Encoding
    allows it; 0 turns response compression off. Below about one TCP segment compressing saves
    no round trip, only CPU."""
    request_timeout_ms: float = 30_000.0 * MILLISECONDS
    """Deadline of a request; ``X-Request-Timeout-Ms`` can only shorten it."""
    reload_interval_s: float = 10.0 * SECONDS
    """How often the store is polled for new versions; 0 turns hot reload off."""
    allow_version_mismatch: bool = False
    """Load artifacts made with another scikit-learn version (with a warning)."""
    allow_pickle: bool = True
    """Load joblib (pickle) versions, which run code when loaded, with one warning each; false
    refuses them unread. True so that stores written by the first release keep loading."""
    trusted_types: tuple[str, ...] = ()
    """Dotted type names a skops artifact may hold beyond scikit-learn's, numpy's and scipy's
    (a user's own transformer classes); comma-separated in the environment."""
    admin_token: str | None = field(default=None, repr=False)
    """Bearer token for the model repository API; unset, those routes answer 403."""
    drain_s: float = 0.0 * SECONDS
    """After SIGTERM, how long to keep serving with readiness off before closing."""
    graceful_timeout_s: float = 30.0 * SECONDS
    """How long accepted requests may take to finish once the server is closing."""
    keep_alive_s: float = 5.0 * SECONDS
    """Idle keep-alive timeout. Hypercorn keeps a connection's tasks until it expires even after
    the client closed it, so it bounds that state; behind a load balancer that reuses
    connections longer (e.g. 60 s), raise it above the balancer's idle timeout."""
    log_level: str = "INFO"
    """Log level: DEBUG, INFO, WARNING, ERROR or CRITICAL."""
    log_format: str = "auto"
    """``json`` lines for log pipelines, ``console`` lines for people, or ``auto``: console when
    stderr is a terminal, JSON otherwise (containers, CI, a pipe)."""
    access_log: bool = True
    """Write one JSON access-log line per request."""
    tree_engine: str = "auto"
    """``auto``: serve tree ensembles and linear models by the exact fast engines when they match
    scikit-learn on their load-time probes; ``off``: always scikit-learn's own methods."""
    threads_per_worker: int | None = None
    """Threads of each worker's BLAS/OpenMP pools; unset: the cores divided by the workers."""
    tracing: bool = False
    """Export OpenTelemetry traces over OTLP/HTTP, configured by the standard ``OTEL_*``
    variables; off, requests create no span objects at all."""

    def __post_init__(self) -> None:
        _check(self.port, "port", lambda v: 0 <= v <= 65535, "an integer from 0 to 65535")
        _check(self.workers, "workers", lambda v: 1 <= v <= 64, "an integer from 1 to 64")
        for name in ("max_batch_rows", "max_queue_rows", "max_concurrent_batches"):
            _check(getattr(self, name), name, lambda v: v >= 1, "a positive integer")
        _check(self.max_request_rows, "max_request_rows", lambda v: v >= 1, "a positive integer")
        _check(self.max_body_bytes, "max_body_bytes", lambda v: v >= 1, "a positive integer")
        _check(self.gzip_min_bytes, "gzip_min_bytes", lambda v: v >= 0, "an integer >= 0")
        for name in ("max_wait_ms", "reload_interval_s", "drain_s"):
            _check(getattr(self, name), name, _finite_non_negative, "a number >= 0")
        for name in ("request_timeout_ms", "graceful_timeout_s", "keep_alive_s"):
            _check(getattr(self, name), name, _finite_positive, "a number > 0")
        _check(self.tree_engine, "tree_engine", lambda v: v in _TREE_ENGINES, "auto | off")
        if self.threads_per_worker is not None:
            _check(
                self.threads_per_worker,
                "threads_per_worker",
                lambda v: 1 <= v <= 1024,
                "an integer from 1 to 1024",
            )
        _check(self.log_level, "log_level", lambda v: v in _LOG_LEVELS, " | ".join(_LOG_LEVELS))
        _check(self.log_format, "log_format", lambda v: v in _LOG_FORMATS, " | ".join(_LOG_FORMATS))
        for name in self.trusted_types:
            if _DOTTED_NAME.fullmatch(name) is None:
                raise SettingsError(
                    "trusted_types",
                    ",".join(self.trusted_types),
                    "comma-separated dotted type names such as mypackage.transformers.Clip",
                )
        if self.max_queue_rows < self.max_batch_rows:
            raise SettingsError(
                "max_queue_rows",
                self.max_queue_rows,
                f"at least PREDICTION_MAX_BATCH_ROWS ({self.max_batch_rows})",
            )
        if self.max_queue_rows < self.max_request_rows:
            # Otherwise a request at the row limit could never be admitted.
            raise SettingsError(
                "max_queue_rows",
                self.max_queue_rows,
                f"at least PREDICTION_MAX_REQUEST_ROWS ({self.max_request_rows})",
            )
        if self.admin_token is not None and len(self.admin_token) < 16:
            raise SettingsError("admin_token", "<hidden>", "at least 16 characters")

    @property
    def max_wait_s(self) -> float:
        """``max_wait_ms`` in seconds, as the batcher takes it."""
        return self.max_wait_ms / 1000

    @property
    def request_timeout_s(self) -> float:
        """``request_timeout_ms`` in seconds."""
        return self.request_timeout_ms / 1000

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, object] | None = None
    ) -> Settings:
        """Build settings from ``PREDICTION_*`` variables, then apply ``overrides`` (CLI flags).

        Args:
            environ: the environment to read (``os.environ``; tests pass a dict).
            overrides: field name -> already typed value; ``None`` values are ignored.

        Raises:
            SettingsError: a variable or override has a value that cannot be used.
        """
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _parse(f.name, raw, _FIELD_TYPES[f.name])
        for name, value in (overrides or {}).items():
            if name not in _FIELD_TYPES:
                raise TypeError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = value
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The ``PREDICTION_*`` variables that rebuild these settings in a worker process."""
        env: dict[str, str] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, tuple):
                text = ",".join(value)
            else:
                text = str(value)
            env[ENV_PREFIX + f.name.upper()] = text
        return env


def _finite_non_negative(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _finite_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def _check(value: Any, name: str, ok: Callable[[Any], bool], expected: str) -> None:
    if not ok(value):
        raise SettingsError(name, value, expected)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

# The annotation of each field, resolved once (the class uses postponed annotations).
_FIELD_TYPES: dict[str, str] = {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def _parse(name: str, raw: str, annotation: str) -> object:
    text = raw.strip()
    optional = annotation.endswith("| None")
    if optional and text == "":
        return None
    kind = annotation.removesuffix(" | None")
    if kind == "int":
        try:
            return int(text)
        except ValueError:
            raise SettingsError(name, raw, "an integer") from None
    if kind == "float":
        try:
            return float(text)
        except ValueError:
            raise SettingsError(name, raw, "a number") from None
    if kind == "bool":
        lowered = text.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingsError(name, raw, "true or false")
    if kind == "tuple[str, ...]":
        return tuple(item.strip() for item in text.split(",") if item.strip())
    if kind == "Path":
        if not text:
            raise SettingsError(name, raw, "a directory path")
        return Path(text)
    if name == "log_level":
        return text.upper()
    if name in ("log_format", "tree_engine"):
        return text.lower()
    return text
