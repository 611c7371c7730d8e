"""One bench run from start to end: models, servers in alternating order per round, wrk, report.

Every server gets the whole machine (no CPU pinning) while it is measured, and only one runs at
a time. Each point is an unmeasured warm-up of the same load, a scrape of the service's
metrics, a reading of the server's process-tree CPU time, the measured wrk run, and a second
reading and scrape. Servers are stopped when their points are done or the run fails; wrk stops
by itself after ``-d``. Before any server starts, the models' ``predict`` is timed in-process
(the raw bulk rate and the micro-benchmark), and so is the app's prediction path with tracing
off and on, while the machine is otherwise quiet. The traced server row exports its spans to a
receiver in this process (:mod:`bench.otlp`) that lives as long as the servers are measured.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from typing import Final
from typing import TextIO

from bench import BenchError
from bench.catalog import MODEL_LABELS
from bench.catalog import SERVER_LABELS
from bench.catalog import SERVICE
from bench.catalog import SERVICE_313
from bench.catalog import SERVICE_TRACED
from bench.catalog import SERVICES
from bench.catalog import TRACING_MODEL
from bench.cpu import tree_cpu_s
from bench.hooks import BLOCK_REQUESTS
from bench.hooks import TracingMicro
from bench.micro import MicroResult
from bench.options import BenchOptions
from bench.options import estimated_seconds
from bench.otlp import OtlpSink
from bench.otlp import SinkCounts
from bench.report import BenchReport
from bench.report import Point
from bench.report import evaluate_targets
from bench.report import render_markdown
from bench.report import render_text
from bench.report import report_json
from bench.report import strict_failures
from bench.report import write_plot
from bench.scrape import BatchRows
from bench.scrape import mean_batch_rows
from bench.scrape import scrape_batch_rows
from bench.servers import RunningServer
from bench.servers import predict_url
from bench.servers import start_server
from bench.servers import wait_ready
from bench.wrk import WrkResult
from bench.wrk import run_wrk
from bench.wrk import write_script
from bench.wrk import wrk_path

__all__ = ["PLOT_FILE", "REPORT_FILE", "RESULTS_FILE", "main", "run"]

REPORT_FILE: Final = "bench-report.md"
PLOT_FILE: Final = "bench.png"
RESULTS_FILE: Final = "bench-results.json"
# The in-process tracing measurement gets this many micro-benchmark cells' budgets (3 s by
# default): its three apps' blocks alternate, so each gets a third.
TRACING_MICRO_BUDGETS: Final = 10


class _Bodies:
    """The request bodies, written once to files wrk's script reads."""

    def __init__(self, directory: Path, bulk_rows: int) -> None:
        from bench.models import request_body

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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """What the run settled before measuring: the servers, worker counts, interpreters."""

    servers: tuple[str, ...]
    workers: int
    """How many worker processes (a) runs, and so (d)."""
    workers_source: str
    python313: Path | None
    """The venv python of the service-3.13 row; None when that row is not measured."""
    python313_note: str


def _workers(options: BenchOptions) -> tuple[int, str]:
    if options.service_workers is not None:
        return options.service_workers, "--service-workers"
    from service.settings import Settings
    from service.settings import SettingsError

    # What `serve` picks without --workers: PREDICTION_WORKERS or the default.
    try:
        workers = Settings.from_env(os.environ).workers
    except SettingsError as error:
        raise BenchError(str(error)) from None
    if options.url:
        return workers, "as started; (d) gets PREDICTION_WORKERS or the service's default"
    return workers, "PREDICTION_WORKERS or the service's default"


def _plan(options: BenchOptions, out: TextIO) -> _Plan:
    workers, source = _workers(options)
    servers = options.servers
    python313: Path | None = None
    note = "not measured (not in --servers)"
    if SERVICE_313 in servers:
        from bench.py313 import find_python313
        from bench.py313 import prepare_venv

        found = find_python313(options.py313)
        if isinstance(found, str):
            note = f"skipped: {found}"
            print(f"skipping {SERVER_LABELS[SERVICE_313]}: {found}", file=out, flush=True)
            servers = tuple(server for server in servers if server != SERVICE_313)
        else:
            print(f"preparing {options.py313_venv} (Python {found.version})", file=out, flush=True)
            python313, built = prepare_venv(found, options.py313_venv)
            note = (
                f"{python313} (Python {found.version}, editable install of this checkout; "
                f"{'built for this run' if built else 'reused'})"
            )
    if not servers:
        raise BenchError("no server left to measure")
    return _Plan(
        servers=servers,
        workers=workers,
        workers_source=source,
        python313=python313,
        python313_note=note,
    )


def _tracing_note(plan: _Plan, exported: SinkCounts | None) -> str:
    if SERVICE_TRACED not in plan.servers or exported is None:
        return "(a) with tracing on: not measured (not in --servers)"
    return (
        "(a) with tracing on: PREDICTION_TRACING=true, every request sampled (a new trace "
        "each: server, queue-wait and model-call spans), exported over OTLP/HTTP to a receiver "
        "in the bench's process on 127.0.0.1 (its CPU not counted), which received "
        f"{exported.spans:,} spans in {exported.exports:,} exports; (a) runs with "
        "PREDICTION_TRACING=false"
    )


def _notes(
    options: BenchOptions, plan: _Plan, load_before: str, exported: SinkCounts | None
) -> tuple[str, ...]:
    import numpy
    import sklearn

    from service import __version__

    env = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("PREDICTION_"))
    micro = (
        f"{options.micro_s:g} s budget per model, engine and batch size; the prediction path "
        f"with tracing off and on: {TRACING_MICRO_BUDGETS * options.micro_s:g} s, in blocks of "
        f"{BLOCK_REQUESTS} requests"
        if options.micro_s
        else "skipped"
    )
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
        f"(a) service: {options.url or 'started by the bench'}, workers {plan.workers} "
        f"({plan.workers_source}); environment: "
        f"{' '.join(env) if env else 'no PREDICTION_* variables'}",
        f"(a) on Python 3.13: {plan.python313_note}",
        _tracing_note(plan, exported),
        f"(d) bare Quart+Hypercorn: {plan.workers} worker(s) (as (a)), the same Hypercorn "
        "config and event loop; the 1-process (d) only with --servers ...,bare-1",
        f"in-process predict micro-benchmark: {micro}",
        # Other work on the machine shows up here; the bench cannot keep it away.
        f"load average before: {load_before}; after: {_load_average()}",
    )


def _measure(
    *,
    running: RunningServer,
    model: str,
    connections: int,
    rows: int,
    body: Path,
    script: Path,
    options: BenchOptions,
    round_number: int,
) -> Point:
    url = predict_url(running.url, model)

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

    def cpu() -> float | None:
        return None if running.pid is None else tree_cpu_s(running.pid)

    if options.warmup_s > 0:
        drive(options.warmup_s)
    scrape = running.name in SERVICES
    before: BatchRows | None = scrape_batch_rows(running.url, model) if scrape else None
    # Read right around the measured run, so the scrapes' own CPU is not counted.
    cpu_before = cpu()
    result = drive(options.duration_s)
    cpu_after = cpu()
    after: BatchRows | None = scrape_batch_rows(running.url, model) if scrape else None
    return Point(
        round=round_number,
        server=running.name,
        model=model,
        connections=connections,
        rows=rows,
        result=result,
        mean_batch_rows=mean_batch_rows(before, after) if before and after else None,
        cpu_s=None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    )


def _measure_server(
    running: RunningServer,
    *,
    bodies: _Bodies,
    script: Path,
    options: BenchOptions,
    round_number: int,
    out: TextIO,
) -> list[Point]:
    points: list[Point] = []
    for case in options.cases(running.name):
        point = _measure(
            running=running,
            model=case.model,
            connections=case.connections,
            rows=case.rows,
            body=bodies.single_path if case.rows == 1 else bodies.bulk_path,
            script=script,
            options=options,
            round_number=round_number,
        )
        points.append(point)
        result = point.result
        p99 = "-" if result.p99_s is None else f"{result.p99_s * 1000:.1f} ms"
        cpu = point.cpu_us_per_request
        cpu_text = "" if cpu is None else f", CPU {cpu:,.0f} us/req"
        batch = "" if point.mean_batch_rows is None else f", batch {point.mean_batch_rows:.1f}"
        print(
            f"  {MODEL_LABELS[case.model]:18} {case.rows:>3} row(s) x {case.connections:>3} "
            f"conns: {point.ok_requests_per_s:>9,.0f} req/s, p99 {p99}, "
            f"errors {result.errors}{cpu_text}{batch}",
            file=out,
            flush=True,
        )
    return points


def _load_models(store_root: Path, models: Sequence[str]) -> dict[str, Any]:
    from service.store import ModelStore

    store = ModelStore(store_root)
    return {model: store.load(model, store.versions(model)[-1]).model for model in models}


@dataclass(frozen=True, slots=True)
class _InProcess:
    """What is measured in the bench's own process, before any server competes for the CPU."""

    raw: dict[str, float]
    micro: tuple[MicroResult, ...]
    tracing: TracingMicro | None


def _in_process(
    loaded: Mapping[str, Any],
    options: BenchOptions,
    *,
    store_root: Path,
    work_dir: Path,
    out: TextIO,
) -> _InProcess:
    """The raw bulk rows/s, the micro-benchmark and tracing's cost per request."""
    from bench.hooks import tracing_micro
    from bench.micro import micro_benchmark
    from bench.models import dataset
    from bench.models import raw_rows_per_s
    from bench.models import request_body

    raw = {}
    if options.bulk_rows:
        raw = {model: raw_rows_per_s(fitted, options.bulk_rows) for model, fitted in loaded.items()}
    micro: tuple[MicroResult, ...] = ()
    tracing: TracingMicro | None = None
    if options.micro_s:
        print("timing predict in-process", file=out, flush=True)
        X, _ = dataset()
        micro = tuple(micro_benchmark(loaded, X, budget_s=options.micro_s))
        model = TRACING_MODEL if TRACING_MODEL in loaded else next(iter(loaded))
        print("timing the prediction path in-process, tracing off and on", file=out, flush=True)
        tracing = tracing_micro(
            store_root,
            model,
            request_body(1),
            budget_s=TRACING_MICRO_BUDGETS * options.micro_s,
            work_dir=work_dir,
        )
    return _InProcess(raw=raw, micro=micro, tracing=tracing)


@contextmanager
def _otlp_sink(plan: _Plan) -> Iterator[OtlpSink | None]:
    """The receiver of the traced row's spans, for the whole run; None without that row."""
    if SERVICE_TRACED not in plan.servers:
        yield None
        return
    with OtlpSink() as sink:
        yield sink


def _collect(
    options: BenchOptions,
    plan: _Plan,
    *,
    work_dir: Path,
    store_root: Path,
    artifacts: Mapping[str, Path],
    sink: OtlpSink | None,
    out: TextIO,
) -> list[Point]:
    bodies = _Bodies(work_dir, options.bulk_rows)
    script = write_script(work_dir)
    log_dir = work_dir / "logs"
    log_dir.mkdir()
    if options.url and SERVICE in plan.servers:
        wait_ready(options.url, options.models, bodies.single, timeout_s=10.0)
    points: list[Point] = []
    for round_number in range(1, options.rounds + 1):
        for server in _server_order(plan.servers, round_number):
            print(f"round {round_number}/{options.rounds}: {SERVER_LABELS[server]}", file=out)
            started = time.monotonic()
            measure = partial(
                _measure_server,
                bodies=bodies,
                script=script,
                options=options,
                round_number=round_number,
                out=out,
            )
            if server == SERVICE and options.url:
                points += measure(RunningServer(server, options.url, pid=None, log_path=None))
                continue
            with start_server(
                server,
                log_dir=log_dir,
                store_root=store_root,
                artifacts=artifacts,
                probe_body=bodies.single,
                workers=plan.workers,
                service_workers=options.service_workers,
                python313=plan.python313,
                otlp_endpoint=None if sink is None else sink.endpoint,
                cwd=work_dir,
            ) as running:
                points += measure(running)
            exported = ""
            if server == SERVICE_TRACED and sink is not None:
                exported = f", {sink.counts.spans:,} spans exported so far"
            print(f"  ({time.monotonic() - started:.0f} s{exported})", file=out, flush=True)
    return points


def run(options: BenchOptions, *, out: TextIO = sys.stdout) -> BenchReport:
    """Measure, print the report to ``out`` and write it into ``options.results_dir``.

    Raises:
        BenchError: wrk is missing, a server did not start, or wrk failed.
    """
    wrk_path()  # fail before training anything when wrk is missing
    load_before = _load_average()
    started = time.monotonic()
    plan = _plan(options, out)
    print(
        f"bench: {len(plan.servers)} servers x {options.rounds} rounds, "
        f"{options.rounds * sum(len(options.cases(server)) for server in plan.servers)} "
        "measured points, about "
        f"{estimated_seconds(options, plan.servers) / 60:.0f} min",
        file=out,
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="prediction-bench-") as temp:
        work_dir = Path(temp)
        store_root = (options.model_store or work_dir / "model_store").resolve()
        from bench.models import prepare_store

        artifacts = prepare_store(store_root, options.models)
        measured = _in_process(
            _load_models(store_root, options.models),
            options,
            store_root=store_root,
            work_dir=work_dir,
            out=out,
        )
        with _otlp_sink(plan) as sink:
            points = _collect(
                options,
                plan,
                work_dir=work_dir,
                store_root=store_root,
                artifacts=artifacts,
                sink=sink,
                out=out,
            )
            exported = None if sink is None else sink.counts
    report = BenchReport(
        points=tuple(points),
        raw_rows_per_s=measured.raw,
        bulk_rows=options.bulk_rows,
        rounds=options.rounds,
        servers=plan.servers,
        models=options.models,
        notes=_notes(options, plan, load_before, exported),
        micro=measured.micro,
        tracing=measured.tracing,
        tracing_exports=exported,
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
    """Run the bench; 1 when ``--strict`` and a required target failed, else 0."""
    report = run(options)
    failed = strict_failures(
        evaluate_targets(report.points, report.raw_rows_per_s, report.bulk_rows, report.micro)
    )
    return 1 if options.strict and failed else 0
