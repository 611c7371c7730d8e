"""What each server is measured at: every case for most, a few for (a) with tracing on."""

from __future__ import annotations

import pytest

from bench.catalog import LOGREG
from bench.catalog import RANDOM_FOREST
from bench.catalog import SERVICE
from bench.catalog import SERVICE_TRACED
from bench.options import BenchOptions
from bench.options import Case
from bench.options import estimated_seconds


def test_a_server_is_measured_at_every_connection_count_and_the_bulk_case_per_model() -> None:
    """Each model at each connection count with single rows, then its bulk case."""
    options = BenchOptions(connections=(1, 64), bulk_rows=256, bulk_connections=16)

    assert options.cases(SERVICE) == (
        Case(RANDOM_FOREST, 1, 1),
        Case(RANDOM_FOREST, 64, 1),
        Case(RANDOM_FOREST, 16, 256),
        Case(LOGREG, 1, 1),
        Case(LOGREG, 64, 1),
        Case(LOGREG, 16, 256),
    )


def test_tracing_on_is_measured_on_the_logistic_regression_at_1_and_64_connections() -> None:
    """The default run's traced row: two single-row points, no bulk case."""
    options = BenchOptions()

    assert options.cases(SERVICE_TRACED) == (Case(LOGREG, 1, 1), Case(LOGREG, 64, 1))


def test_tracing_on_follows_the_chosen_models_and_connections_when_they_leave_out_its_own() -> None:
    """Without the LogisticRegression or those connection counts, it measures what was chosen."""
    options = BenchOptions(models=(RANDOM_FOREST,), connections=(4, 16))

    assert options.cases(SERVICE_TRACED) == (Case(RANDOM_FOREST, 4, 1), Case(RANDOM_FOREST, 16, 1))


def test_the_estimate_counts_each_servers_own_cases() -> None:
    """The traced row adds its two points and a start-up per round, not a full server's worth."""
    options = BenchOptions(servers=(SERVICE,), rounds=1, duration_s=4, warmup_s=1)
    traced = BenchOptions(servers=(SERVICE, SERVICE_TRACED), rounds=1, duration_s=4, warmup_s=1)

    added = estimated_seconds(traced) - estimated_seconds(options)

    assert added == pytest.approx(estimated_seconds(traced, (SERVICE_TRACED,)))
    assert added == pytest.approx(2 * (4 + 1 + 0.3) + 4.0)
