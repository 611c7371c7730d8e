"""Reading a server's process-tree CPU time from /proc: the stat line, the tree, the live read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cpu import ProcStat
from bench.cpu import parse_stat
from bench.cpu import read_stats
from bench.cpu import tree_cpu_s
from bench.cpu import tree_ticks

# A Hypercorn worker's line, its command name holding a space and a parenthesis.
WORKER = (
    "4242 (python (w 1)) S 4200 4200 4200 0 -1 4194560 21880 0 0 0 "
    "713 129 5 3 20 0 3 0 1234567 1009004544 30000 18446744073709551615 1 1 0 0 0 0 0 "
    "16781312 16386 0 0 0 17 1 0 0 0 0 0"
)


def stat(pid: int, ppid: int, ticks: int) -> ProcStat:
    return ProcStat(pid=pid, ppid=ppid, ticks=ticks)


def test_stat_line_gives_pid_parent_and_all_cpu_ticks() -> None:
    """pid, ppid, and utime + stime + cutime + cstime, past a command name with ')' in it."""
    assert parse_stat(WORKER) == ProcStat(pid=4242, ppid=4200, ticks=713 + 129 + 5 + 3)


def test_a_truncated_stat_line_is_refused() -> None:
    """A line without the CPU fields raises ValueError rather than reading the wrong ones."""
    with pytest.raises(ValueError, match="not a /proc/<pid>/stat line"):
        parse_stat("4242 (python) S 4200 4200")


def test_tree_sums_the_root_and_every_descendant_only() -> None:
    """A supervisor, its workers and their child count; a sibling and the parent do not."""
    stats = [
        stat(1, 0, 1000),  # init: the root's parent
        stat(10, 1, 5),  # the server's supervisor
        stat(11, 10, 300),  # worker
        stat(12, 10, 200),  # worker
        stat(13, 12, 7),  # a worker's child
        stat(20, 1, 999),  # another program
    ]

    assert tree_ticks(stats, 10) == 5 + 300 + 200 + 7
    assert tree_ticks(stats, 12) == 207


def test_a_root_that_is_gone_has_no_cpu_time() -> None:
    """A pid not among the processes gives None, not 0."""
    assert tree_ticks([stat(1, 0, 10)], 99) is None


def test_read_stats_skips_entries_that_are_not_processes(tmp_path: Path) -> None:
    """Non-numeric entries and unreadable or garbled stat files are skipped."""
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "stat").write_text(WORKER)
    (tmp_path / "4300").mkdir()  # exited between listing and reading: no stat file
    (tmp_path / "4301").mkdir()
    (tmp_path / "4301" / "stat").write_text("garbled")
    (tmp_path / "self").mkdir()

    assert read_stats(tmp_path) == [parse_stat(WORKER)]


def test_live_tree_of_this_process_includes_a_reaped_child() -> None:
    """This process's CPU time grows by at least what a finished child spent."""
    before = tree_cpu_s(os.getpid())
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, time\n"
            "start = os.times()\n"
            "while sum(os.times()[:2]) - sum(start[:2]) < 0.2: pass\n"
            "print(sum(os.times()[:2]))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    after = tree_cpu_s(os.getpid())

    assert before is not None
    assert after is not None
    # The child's own CPU (at least 0.2 s), to the 10 ms tick, is now in this process's cutime.
    assert after - before >= float(child.stdout) - 0.02
