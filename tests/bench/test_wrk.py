"""Parsing wrk 4.1.0's reports: outputs captured from real runs against the bench's servers."""

from __future__ import annotations

import pytest

from bench.scrape import BatchRows
from bench.scrape import mean_batch_rows
from bench.scrape import parse_batch_rows
from bench.wrk import parse_duration_s
from bench.wrk import parse_wrk_output

# The service, RandomForest, 64 connections: a clean run.
SERVICE_RF_64 = """\
Running 3s test @ http://127.0.0.1:18081/predict?model=rf
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    45.06ms   21.76ms 136.92ms   89.09%
    Req/Sec     1.48k   377.79     1.92k    76.67%
  Latency Distribution
     50%   37.95ms
     75%   42.89ms
     90%   70.46ms
     99%  131.00ms
  4439 requests in 3.02s, 0.99MB read
Requests/sec:   1471.25
Transfer/sec:    334.77KB
"""

# The bare Quart app at 1 connection: percentiles in microseconds and milliseconds.
BARE_1 = """\
Running 2s test @ http://127.0.0.1:18082/predict?model=logreg
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   832.46us    1.38ms  12.78ms   89.90%
    Req/Sec     2.31k   730.82     3.30k    60.00%
  Latency Distribution
     50%  312.00us
     75%  445.00us
     90%    2.23ms
     99%    7.43ms
  4614 requests in 2.01s, 662.56KB read
Requests/sec:   2299.54
Transfer/sec:    330.21KB
"""

# Tutorial Flask (1 sync worker), RandomForest, 256 connections, --timeout 1s: time-outs.
FLASK_RF_256_TIMEOUTS = """\
Running 4s test @ http://127.0.0.1:18083/predict?model=rf
  1 threads and 256 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   520.46ms  298.91ms 997.67ms   56.99%
    Req/Sec   101.32     29.53   220.00     85.00%
  Latency Distribution
     50%  522.57ms
     75%  783.71ms
     90%  940.52ms
     99%  997.67ms
  409 requests in 4.08s, 65.50KB read
  Socket errors: connect 0, read 0, write 0, timeout 316
Requests/sec:    100.18
Transfer/sec:     16.04KB
"""

# The same at --timeout 5s: latencies in seconds, which wrk pads with a trailing space.
FLASK_RF_256_SECONDS = "\n".join(
    [
        "Running 4s test @ http://127.0.0.1:18083/predict?model=rf",
        "  1 threads and 256 connections",
        "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
        "    Latency     1.96s   802.98ms   3.00s    64.53%",
        "    Req/Sec    95.33     41.37   222.00     74.36%",
        "  Latency Distribution",
        "     50%    2.23s ",
        "     75%    2.63s ",
        "     90%    2.83s ",
        "     99%    2.98s ",
        "  375 requests in 4.04s, 60.06KB read",
        "Requests/sec:     92.73",
        "Transfer/sec:     14.85KB",
    ]
)

# The service, 256-row requests at 16 connections: most shed with 503 (queue full).
SERVICE_BULK_503 = """\
Running 3s test @ http://127.0.0.1:18081/predict?model=rf
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    98.66ms  165.43ms 894.20ms   87.96%
    Req/Sec   532.55    288.35     1.06k    62.07%
  Latency Distribution
     50%   16.72ms
     75%  118.90ms
     90%  313.23ms
     99%  784.61ms
  1561 requests in 3.02s, 455.57KB read
  Non-2xx or 3xx responses: 1466
Requests/sec:    516.27
Transfer/sec:    150.67KB
"""

# The bare app killed (SIGKILL) 1.5 s into a 3 s run: read, write and time-out errors.
SERVER_KILLED = """\
Running 3s test @ http://127.0.0.1:18082/predict?model=logreg
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.99ms   12.67ms  74.46ms   96.77%
    Req/Sec   769.00    848.90     1.68k    66.67%
  Latency Distribution
     50%    2.58ms
     75%    4.88ms
     90%    6.91ms
     99%   74.26ms
  256 requests in 3.04s, 36.75KB read
  Socket errors: connect 0, read 8, write 37626, timeout 8
Requests/sec:     84.12
Transfer/sec:     12.08KB
"""

# A listener that accepts and never answers: nothing completes.
SILENT_SERVER = """\
Running 2s test @ http://127.0.0.1:18090/predict
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 2.01s, 0.00B read
Requests/sec:      0.00
Transfer/sec:       0.00B
"""


def test_clean_run_gives_counts_rate_and_percentiles() -> None:
    """A run without errors yields requests, duration, rate, p50 and p99, and zero errors."""
    result = parse_wrk_output(SERVICE_RF_64)

    assert (result.requests, result.duration_s, result.requests_per_s) == (4439, 3.02, 1471.25)
    assert result.p50_s == pytest.approx(0.03795)
    assert result.p99_s == pytest.approx(0.131)
    assert (result.errors, result.ok_requests_per_s) == (0, 1471.25)


def test_microsecond_percentiles_are_converted_to_seconds() -> None:
    """Percentiles printed in us and ms are both read as seconds."""
    result = parse_wrk_output(BARE_1)

    assert result.p50_s == pytest.approx(312e-6)
    assert result.p99_s == pytest.approx(7.43e-3)


def test_second_percentiles_with_trailing_padding_are_read() -> None:
    """Percentiles printed in seconds (with wrk's trailing space) are read as seconds."""
    result = parse_wrk_output(FLASK_RF_256_SECONDS)

    assert result.p50_s == pytest.approx(2.23)
    assert result.p99_s == pytest.approx(2.98)


def test_timeouts_are_counted_as_errors() -> None:
    """The Socket errors line's time-outs count as errors; completed requests stay as counted."""
    result = parse_wrk_output(FLASK_RF_256_TIMEOUTS)

    assert (result.requests, result.timeouts, result.errors) == (409, 316, 316)
    assert result.ok_requests_per_s == 100.18
    assert result.error_breakdown() == {"timeout": 316}


def test_non_2xx_responses_are_errors_and_not_successes() -> None:
    """Non-2xx responses count as errors and are taken out of the successful rate."""
    result = parse_wrk_output(SERVICE_BULK_503)

    assert (result.non_2xx, result.errors) == (1466, 1466)
    assert result.ok_requests_per_s == pytest.approx(516.27 * 95 / 1561)


def test_every_socket_error_kind_is_counted() -> None:
    """Connect, read, write and time-out errors are each read and all summed into errors."""
    result = parse_wrk_output(SERVER_KILLED)

    assert (result.connect_errors, result.read_errors, result.write_errors, result.timeouts) == (
        0,
        8,
        37626,
        8,
    )
    assert result.errors == 8 + 37626 + 8
    assert result.error_breakdown() == {"read": 8, "write": 37626, "timeout": 8}


def test_a_run_with_no_completed_request_has_no_latency() -> None:
    """With 0 requests, wrk's 0.00us percentiles become None rather than a zero latency."""
    result = parse_wrk_output(SILENT_SERVER)

    assert (result.requests, result.p50_s, result.p99_s, result.ok_requests_per_s) == (
        0,
        None,
        None,
        0.0,
    )


@pytest.mark.parametrize(
    "text",
    [
        "unable to connect to 127.0.0.1:18099 Connection refused",
        "",
        SERVICE_RF_64.replace("Requests/sec:   1471.25\n", ""),
    ],
)
def test_incomplete_output_is_rejected(text: str) -> None:
    """Text without the requests and Requests/sec lines raises ValueError, never a guess."""
    with pytest.raises(ValueError, match="not a complete wrk report"):
        parse_wrk_output(text)


def test_output_without_latency_distribution_is_rejected() -> None:
    """A report of completed requests lacking --latency's percentiles raises ValueError."""
    text = "\n".join(
        line for line in SERVICE_RF_64.splitlines() if "%" not in line or "Stdev" in line
    )

    with pytest.raises(ValueError, match="--latency"):
        parse_wrk_output(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("312.00us", 312e-6), ("37.95ms", 0.03795), ("2.23s", 2.23), ("1.50m", 90.0), ("1h", 3600.0)],
)
def test_wrk_time_units(text: str, seconds: float) -> None:
    """Each of wrk's time units (us, ms, s, m, h) converts to seconds."""
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_unknown_time_unit_is_rejected() -> None:
    """A time in a unit wrk does not print raises ValueError."""
    with pytest.raises(ValueError, match="not a wrk time"):
        parse_duration_s("3 days")


# Lines as the service's /metrics (prometheus_client text format) prints them.
METRICS_TEXT = """\
# HELP prediction_batch_rows Rows per model call.
# TYPE prediction_batch_rows histogram
prediction_batch_rows_bucket{le="1.0",model="rf"} 10.0
prediction_batch_rows_count{model="rf"} 260.0
prediction_batch_rows_sum{model="rf"} 31384.0
prediction_batch_rows_count{model="logreg"} 0.0
prediction_batch_rows_sum{model="logreg"} 0.0
prediction_batch_rows_created{model="rf"} 1.7e+09
"""


def test_batch_rows_totals_are_read_per_model() -> None:
    """The histogram's _sum and _count are read for the named model only."""
    assert parse_batch_rows(METRICS_TEXT, "rf") == BatchRows(rows=31384.0, batches=260.0)
    assert parse_batch_rows(METRICS_TEXT, "logreg") == BatchRows(rows=0.0, batches=0.0)
    assert parse_batch_rows(METRICS_TEXT, "absent") == BatchRows(rows=0.0, batches=0.0)


def test_mean_batch_rows_is_the_delta_of_sum_over_the_delta_of_count() -> None:
    """Mean rows per batch between two scrapes; None when no batch ran in between."""
    before = BatchRows(rows=100.0, batches=10.0)

    assert mean_batch_rows(before, BatchRows(rows=400.0, batches=20.0)) == 30.0
    assert mean_batch_rows(before, before) is None
