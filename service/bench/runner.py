"""One bench run from start to end: models, servers in alternating order per round, wrk, report.

Every server gets the whole machine (no CPU pinning) while it is measured, and only one runs at
a time. Each point is an unmeasured warm-up of the same load, a scrape of the service's
metrics, the measured wrk run and a second scrape. Servers are stopped when their points are
done or the run fails; wrk stops by itself after ``-d``.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import Final
from typing import TextIO

from service.bench.catalog import MODEL_LABELS
from service.bench.catalog import SERVER_LABELS
from service.bench.catalog import SERVICE
from service.bench.options import BenchOptions
from service.bench.options import estimated_seconds
from service.bench.report import BenchReport
from service.bench.report import Point
from service.bench.report import evaluate_targets
from service.bench.report import render_markdown
from service.bench.report import render_text
from service.bench.report import report_json
from service.bench.report import write_plot
from service.bench.scrape import BatchRows
from service.bench.scrape import mean_batch_rows
from service.bench.scrape import scrape_batch_rows
from service.bench.servers import predict_url
from service.bench.servers import start_server
from service.bench.servers import wait_ready
from service.bench.wrk import WrkResult
from service.bench.wrk import run_wrk
from service.bench.wrk import write_script
from service.bench.wrk import wrk_path

__all__ = ["PLOT_FILE", "REPORT_FILE", "RESULTS_FILE", "main", "run"]

REPORT_FILE: Final = "bench-report.md"
PLOT_FILE: Final = "bench.png"
RESULTS_FILE: Final = "bench-results.json"


class _Bodies:
    """The request bodies, written once to files wrk's script reads."""

    def __init__(self, directory: Path, bulk_rows: int) -> None:
        from service.bench.models import request_body

        self.single = request_body(1)
        self.single_path = directory / "single.json"
        self.single_path.write_bytes(self.single)
        self.bulk_path = directory / "bulk.json"
        if bulk_rows:
            self.bulk_path.write_bytes(request_body(bulk_rows))


def _server_order(servers: Sequence[str], round_number: int) -> list[str]:
    # Alternating the order cancels drift (thermal, page cache, other tenants) between servers.
    return list(servers) if round_number % 2 == 1 else list(reversed(servers))


def _load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def _notes(options: BenchOptions, service_workers: str, load_before: str) -> tuple[str, ...]:
    import numpy
    import sklearn

    from service import __version__

    env = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("PREDICTION_"))
    return (
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; scikit-learn "
        f"{sklearn.__version__}; numpy {numpy.__version__}; service {__version__}",
        f"load generator: {wrk_path()} (-t {options.wrk_threads}), one server at a time on "
        "127.0.0.1, no CPU pinning",
        f"per point: {options.warmup_s:g} s warm-up + {options.duration_s:g} s measured; "
        f"{options.rounds} rounds, server order alternating; wrk time-out "
        f"{options.timeout_s:g} s",
        f"single-row requests at {', '.join(map(str, options.connections))} connections; bulk: "
        + (
            f"{options.bulk_rows}-row requests at {options.bulk_connections} connections"
            if options.bulk_rows
            else "skipped"
        ),
        f"(a) service: {options.url or 'started by the bench'}, workers {service_workers}; "
        f"environment: {' '.join(env) if env else 'no PREDICTION_* variables'}",
        # Other work on the machine shows up here; the bench cannot keep it away.
        f"load average before: {load_before}; after: {_load_average()}",
    )


def _measure(
    *,
    base_url: str,
    server: str,
    model: str,
    connections: int,
    rows: int,
    body: Path,
    script: Path,
    options: BenchOptions,
    round_number: int,
) -> Point:
    url = predict_url(base_url, model)

    def drive(duration_s: int) -> WrkResult:
        return run_wrk(
            url,
            script=script,
            body=body,
            connections=connections,
            duration_s=duration_s,
            timeout_s=options.timeout_s,
            threads=options.wrk_threads,
        )

    if options.warmup_s > 0:
        drive(options.warmup_s)
    scrape = server == SERVICE
    before: BatchRows | None = scrape_batch_rows(base_url, model) if scrape else None
    result = drive(options.duration_s)
    after: BatchRows | None = scrape_batch_rows(base_url, model) if scrape else None
    return Point(
        round=round_number,
        server=server,
        model=model,
        connections=connections,
        rows=rows,
        result=result,
        mean_batch_rows=mean_batch_rows(before, after) if before and after else None,
    )


def _measure_server(
    base_url: str,
    server: str,
    *,
    bodies: _Bodies,
    script: Path,
    options: BenchOptions,
    round_number: int,
    out: TextIO,
) -> list[Point]:
    cases = [(connections, 1, bodies.single_path) for connections in options.connections]
    if options.bulk_rows:
        cases.append((options.bulk_connections, options.bulk_rows, bodies.bulk_path))
    points: list[Point] = []
    for model in options.models:
        for connections, rows, body in cases:
            point = _measure(
                base_url=base_url,
                server=server,
                model=model,
                connections=connections,
                rows=rows,
                body=body,
                script=script,
                options=options,
                round_number=round_number,
            )
            points.append(point)
            result = point.result
            p99 = "-" if result.p99_s is None else f"{result.p99_s * 1000:.1f} ms"
            batch = "" if point.mean_batch_rows is None else f", batch {point.mean_batch_rows:.1f}"
            print(
                f"  {MODEL_LABELS[model]:18} {rows:>3} row(s) x {connections:>3} conns: "
                f"{point.ok_requests_per_s:>9,.0f} req/s, p99 {p99}, "
                f"errors {result.errors}{batch}",
                file=out,
                flush=True,
            )
    return points


def _raw_rates(store_root: Path, models: Sequence[str], rows: int) -> dict[str, float]:
    from service.bench.models import raw_rows_per_s
    from service.store import ModelStore

    store = ModelStore(store_root)
    rates: dict[str, float] = {}
    for model in models:
        loaded = store.load(model, store.versions(model)[-1])
        rates[model] = raw_rows_per_s(loaded.model, rows)
    return rates


def _service_workers(options: BenchOptions) -> str:
    if options.url:
        return "as started"
    if options.service_workers is not None:
        return str(options.service_workers)
    from service.settings import Settings

    # What `serve` would pick without --workers: PREDICTION_WORKERS or the default.
    return f"{Settings.from_env(os.environ).workers} (the service's default)"


def _collect(
    options: BenchOptions,
    *,
    work_dir: Path,
    store_root: Path,
    artifacts: Mapping[str, Path],
    out: TextIO,
) -> list[Point]:
    bodies = _Bodies(work_dir, options.bulk_rows)
    script = write_script(work_dir)
    log_dir = work_dir / "logs"
    log_dir.mkdir()
    if options.url and SERVICE in options.servers:
        wait_ready(options.url, options.models, bodies.single, timeout_s=10.0)
    points: list[Point] = []
    for round_number in range(1, options.rounds + 1):
        for server in _server_order(options.servers, round_number):
            print(f"round {round_number}/{options.rounds}: {SERVER_LABELS[server]}", file=out)
            started = time.monotonic()
            if server == SERVICE and options.url:
                points += _measure_server(
                    options.url,
                    server,
                    bodies=bodies,
                    script=script,
                    options=options,
                    round_number=round_number,
                    out=out,
                )
                continue
            with start_server(
                server,
                log_dir=log_dir,
                store_root=store_root,
                artifacts=artifacts,
                probe_body=bodies.single,
                service_workers=options.service_workers,
                cwd=work_dir,
            ) as running:
                points += _measure_server(
                    running.url,
                    server,
                    bodies=bodies,
                    script=script,
                    options=options,
                    round_number=round_number,
                    out=out,
                )
            print(f"  ({time.monotonic() - started:.0f} s)", file=out, flush=True)
    return points


def run(options: BenchOptions, *, out: TextIO = sys.stdout) -> BenchReport:
    """Measure, print the report to ``out`` and write it into ``options.results_dir``.

    Raises:
        BenchError: wrk is missing, a server did not start, or wrk failed.
    """
    wrk_path()  # fail before training anything when wrk is missing
    load_before = _load_average()
    started = time.monotonic()
    print(
        f"bench: {len(options.servers)} servers x {options.rounds} rounds x "
        f"{options.points_per_server} points, about {estimated_seconds(options) / 60:.0f} min",
        file=out,
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="prediction-bench-") as temp:
        work_dir = Path(temp)
        store_root = (options.model_store or work_dir / "model_store").resolve()
        from service.bench.models import prepare_store

        artifacts = prepare_store(store_root, options.models)
        raw = _raw_rates(store_root, options.models, options.bulk_rows) if options.bulk_rows else {}
        points = _collect(
            options, work_dir=work_dir, store_root=store_root, artifacts=artifacts, out=out
        )
    report = BenchReport(
        points=tuple(points),
        raw_rows_per_s=raw,
        bulk_rows=options.bulk_rows,
        rounds=options.rounds,
        servers=options.servers,
        models=options.models,
        notes=_notes(options, _service_workers(options), load_before),
    )
    results_dir = options.results_dir
    results_dir.mkdir(parents=True, exist_ok=True)
    write_plot(report, results_dir / PLOT_FILE)
    (results_dir / REPORT_FILE).write_text(render_markdown(report, plot_name=PLOT_FILE))
    (results_dir / RESULTS_FILE).write_bytes(report_json(report))
    print("", render_text(report), "", file=out, sep="\n")
    print(
        f"wrote {results_dir / REPORT_FILE}, {results_dir / PLOT_FILE} and "
        f"{results_dir / RESULTS_FILE} in {(time.monotonic() - started) / 60:.1f} min",
        file=out,
    )
    return report


def main(options: BenchOptions) -> int:
    """Run the bench; 1 when ``--strict`` and a target failed, else 0."""
    report = run(options)
    failed = [
        t
        for t in evaluate_targets(report.points, report.raw_rows_per_s, report.bulk_rows)
        if t.passed is False
    ]
    return 1 if options.strict and failed else 0
