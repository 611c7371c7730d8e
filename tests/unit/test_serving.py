"""A worker's process-wide set-up: the start-up heap is exempt from full collections."""

from __future__ import annotations

import json
import subprocess
import sys

# In a child process: freezing is process-wide and would change the test run's own collector.
PROBE = """
import gc, json
import sklearn.ensemble  # a heap the size of a worker's
from service.serving import freeze_heap
before = len(gc.get_objects(generation=2))
freeze_heap()
print(json.dumps([before, len(gc.get_objects(generation=2)), gc.get_freeze_count()]))
"""


def test_freeze_heap_leaves_no_start_up_object_for_full_collections() -> None:
    """After freeze_heap the oldest generation is empty and the start-up objects are frozen."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    before, after, frozen = json.loads(result.stdout)

    assert (True, 0, True) == (before > 10_000, after, frozen >= before)
