"""The bench's flags and the validated options they become.

Kept free of heavy imports, so that a bad flag is reported at once.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench import BenchError
from bench.catalog import DEFAULT_SERVERS
from bench.catalog import MODEL_LABELS
from bench.catalog import SERVERS
from bench.catalog import SERVICE_TRACED
from bench.catalog import TRACING_CONNECTIONS
from bench.catalog import TRACING_MODEL

__all__ = ["DEFAULT_CONNECTIONS", "BenchOptions", "Case", "add_arguments", "estimated_seconds"]

DEFAULT_CONNECTIONS: Final = (1, 16, 64, 256)
# Budget: 5 servers x 3 rounds x 2 models x 5 points x (1 s warm-up + 4 s) is 12.5 minutes of
# load, plus start-ups and training; (a) with tracing on adds 3 rounds x 2 points (under a
# minute with its start-ups); `make bench` must finish in about 15 minutes.
DEFAULT_DURATION_S: Final = 4
DEFAULT_WARMUP_S: Final = 1
DEFAULT_ROUNDS: Final = 3
DEFAULT_BULK_ROWS: Final = 256
DEFAULT_BULK_CONNECTIONS: Final = 16
# wrk's own default; a request still unanswered after this counts as a time-out.
DEFAULT_TIMEOUT_S: Final = 2
# Seconds a server takes to start and answer, on average (the service loads and warms models).
STARTUP_ESTIMATE_S: Final = 4.0
# The in-process micro-benchmark: at most this long per model, engine and batch size.
DEFAULT_MICRO_S: Final = 0.3
# The image's Python, for the extra (a) row, and the virtualenv the bench builds for it.
DEFAULT_PY313: Final = "python3.13"
DEFAULT_PY313_VENV: Final = Path(".bench-venv-3.13")


@dataclass(frozen=True, slots=True)
class Case:
    """One measured load of a server: a model, a connection count and rows per request."""

    model: str
    connections: int
    rows: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchOptions:
    """What one bench run measures and where it writes."""

    # wrk takes whole seconds only.
    duration_s: int = DEFAULT_DURATION_S
    warmup_s: int = DEFAULT_WARMUP_S
    rounds: int = DEFAULT_ROUNDS
    connections: tuple[int, ...] = DEFAULT_CONNECTIONS
    models: tuple[str, ...] = tuple(MODEL_LABELS)
    servers: tuple[str, ...] = DEFAULT_SERVERS
    bulk_rows: int = DEFAULT_BULK_ROWS
    bulk_connections: int = DEFAULT_BULK_CONNECTIONS
    timeout_s: int = DEFAULT_TIMEOUT_S
    wrk_threads: int = 1
    url: str | None = None
    service_workers: int | None = None
    results_dir: Path = Path("bench-results")
    model_store: Path | None = None
    strict: bool = False
    micro_s: float = DEFAULT_MICRO_S
    """Time budget of each cell of the micro-benchmark; 0 skips it."""
    py313: str = DEFAULT_PY313
    py313_venv: Path = DEFAULT_PY313_VENV

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> BenchOptions:
        """Validate the parsed flags.

        Raises:
            BenchError: a flag has a value the bench cannot use.
        """
        options = cls(
            duration_s=int(_positive(args.duration, "--duration")),
            warmup_s=int(_non_negative(args.warmup, "--warmup")),
            rounds=int(_positive(args.rounds, "--rounds")),
            connections=tuple(
                int(_positive(n, "--connections")) for n in _int_list(args.connections)
            ),
            models=_choices(args.models, tuple(MODEL_LABELS), "--models"),
            servers=_choices(args.servers, SERVERS, "--servers"),
            bulk_rows=int(_non_negative(args.bulk_rows, "--bulk-rows")),
            bulk_connections=int(_positive(args.bulk_connections, "--bulk-connections")),
            timeout_s=int(_positive(args.timeout, "--timeout")),
            wrk_threads=int(_positive(args.wrk_threads, "--wrk-threads")),
            url=args.url.rstrip("/") if args.url else None,
            service_workers=(
                int(_positive(args.service_workers, "--service-workers"))
                if args.service_workers is not None
                else None
            ),
            results_dir=args.results_dir,
            model_store=args.model_store,
            strict=args.strict,
            micro_s=_non_negative(args.micro_seconds, "--micro-seconds"),
            py313=args.py313,
            py313_venv=args.py313_venv,
        )
        if options.url is not None and options.service_workers is not None:
            raise BenchError(
                "--service-workers applies only to a service the bench starts, not --url"
            )
        return options

    def cases(self, server: str) -> tuple[Case, ...]:
        """What ``server`` is measured at in each round, in order.

        Every server: each model at each connection count, then the bulk case. (a) with tracing
        on only compares tracing with (a): the LogisticRegression (or the models chosen, without
        it) at 1 and 64 connections (or those chosen, when neither is), no bulk case.
        """
        if server == SERVICE_TRACED:
            models = (TRACING_MODEL,) if TRACING_MODEL in self.models else self.models
            connections = (
                tuple(n for n in self.connections if n in TRACING_CONNECTIONS) or self.connections
            )
            return tuple(Case(model, n, 1) for model in models for n in connections)
        found: list[Case] = []
        for model in self.models:
            found += [Case(model, n, 1) for n in self.connections]
            if self.bulk_rows:
                found.append(Case(model, self.bulk_connections, self.bulk_rows))
        return tuple(found)


def estimated_seconds(options: BenchOptions, servers: Sequence[str] | None = None) -> float:
    """About how long the run takes: load time plus one start-up per server and round.

    ``servers`` are those measured, when fewer than ``options.servers`` (one skipped).
    """
    per_point = options.duration_s + options.warmup_s + 0.3
    return options.rounds * sum(
        len(options.cases(server)) * per_point + STARTUP_ESTIMATE_S
        for server in (options.servers if servers is None else servers)
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` flags to ``parser``."""
    parser.add_argument(
        "--duration",
        type=int,
        default=DEFAULT_DURATION_S,
        metavar="S",
        help=f"measured whole seconds per point (default {DEFAULT_DURATION_S:g})",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=DEFAULT_WARMUP_S,
        metavar="S",
        help=f"unmeasured seconds of load before each point (default {DEFAULT_WARMUP_S:g})",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        metavar="N",
        help=f"rounds over all servers, in alternating order (default {DEFAULT_ROUNDS})",
    )
    parser.add_argument(
        "--connections",
        default=",".join(map(str, DEFAULT_CONNECTIONS)),
        metavar="LIST",
        help="comma-separated connection counts for single-row requests (default %(default)s)",
    )
    parser.add_argument(
        "--models",
        default=",".join(MODEL_LABELS),
        metavar="LIST",
        help=f"models to serve, of {', '.join(MODEL_LABELS)} (default %(default)s)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        metavar="LIST",
        help=f"servers to measure, of {', '.join(SERVERS)} (default %(default)s)",
    )
    parser.add_argument(
        "--bulk-rows",
        type=int,
        default=DEFAULT_BULK_ROWS,
        metavar="N",
        help=f"rows per request of the bulk case; 0 skips it (default {DEFAULT_BULK_ROWS})",
    )
    parser.add_argument(
        "--bulk-connections",
        type=int,
        default=DEFAULT_BULK_CONNECTIONS,
        metavar="N",
        help=f"connections of the bulk case (default {DEFAULT_BULK_CONNECTIONS})",
    )
    parser.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help=f"wrk's per-request time-out, counted as an error (default {DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--wrk-threads",
        type=int,
        default=1,
        metavar="N",
        help="wrk threads; one leaves the most CPU to the server (default 1)",
    )
    parser.add_argument(
        "--url",
        help="measure an already running service at this base URL as (a) instead of starting "
        "one; it must serve the bench's models (see --model-store)",
    )
    parser.add_argument(
        "--service-workers",
        type=int,
        metavar="N",
        help="--workers of the service the bench starts, and of (d) (default: the "
        "service's default)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("bench-results"),
        metavar="DIR",
        help="where bench-report.md, bench.png and bench-results.json go (default %(default)s)",
    )
    parser.add_argument(
        "--model-store",
        type=Path,
        metavar="DIR",
        help="keep the bench's models in this store (reused when present) instead of a "
        "temporary one; serve it yourself to use --url",
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a target fails (default: exit 0)"
    )
    parser.add_argument(
        "--micro-seconds",
        type=float,
        default=DEFAULT_MICRO_S,
        metavar="S",
        help="time budget of each model x engine x batch size of the in-process predict "
        f"micro-benchmark; 0 skips it (default {DEFAULT_MICRO_S:g})",
    )
    parser.add_argument(
        "--py313",
        default=DEFAULT_PY313,
        metavar="EXE",
        help="the Python 3.13 that runs the service-3.13 row; skipped, with a note, when it "
        "is not found or does not run (default %(default)s)",
    )
    parser.add_argument(
        "--py313-venv",
        type=Path,
        default=DEFAULT_PY313_VENV,
        metavar="DIR",
        help="the virtualenv built with --py313 for that row (an editable install of this "
        "checkout, rebuilt when pyproject.toml changes; default %(default)s)",
    )


def _int_list(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise BenchError(f"--connections must be comma-separated integers, got {text!r}") from None


def _choices(text: str, allowed: Sequence[str], flag: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(item.strip() for item in text.split(",") if item.strip()))
    unknown = [item for item in chosen if item not in allowed]
    if unknown or not chosen:
        raise BenchError(
            f"{flag} takes a comma-separated list of {', '.join(allowed)}, got {text!r}"
        )
    # Reports list them in the catalog's order, whatever order the flag gave.
    return tuple(item for item in allowed if item in chosen)


def _positive(value: float, flag: str) -> float:
    if not (math.isfinite(value) and value > 0):
        raise BenchError(f"{flag} must be a positive number, got {value!r}")
    return value


def _non_negative(value: float, flag: str) -> float:
    if not (math.isfinite(value) and value >= 0):
        raise BenchError(f"{flag} must be a number >= 0, got {value!r}")
    return value
