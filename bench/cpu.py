"""CPU time of a server's whole process tree, read from ``/proc/<pid>/stat`` (Linux).

A server's CPU per answered request is far steadier than its requests per second on a shared
machine: other tenants slow the server down, but barely change what each request costs it. The
bench reads the tree's total just before and just after each measured run; the difference is
the CPU the server (its leader and every descendant: workers, threads) spent on that run.
:func:`parse_stat` and :func:`tree_ticks` are pure, so they are tested on captured text.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["ProcStat", "parse_stat", "read_stats", "tree_cpu_s", "tree_ticks"]

PROC: Final = Path("/proc")


@dataclass(frozen=True, slots=True)
class ProcStat:
    """What the bench needs of one ``/proc/<pid>/stat`` line."""

    pid: int
    ppid: int
    ticks: int
    """utime + stime of the process (all its threads) and of its children it has reaped, in
    clock ticks; counting reaped children keeps the total steady when a worker exits."""


def parse_stat(text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line (``proc(5)``).

    Raises:
        ValueError: not such a line.
    """
    # The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    head, paren, rest = text.rpartition(")")
    pid_text, _, _ = head.partition(" (")
    fields = rest.split()
    if not paren or len(fields) < 15:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:80]!r}")
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14-17.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcStat(pid=int(pid_text), ppid=int(fields[1]), ticks=utime + stime + cutime + cstime)


def tree_ticks(stats: Iterable[ProcStat], root: int) -> int | None:
    """The ticks of ``root`` and all its descendants; None when ``root`` is not among ``stats``."""
    by_pid = {stat.pid: stat for stat in stats}
    if root not in by_pid:
        return None
    children: dict[int, list[int]] = {}
    for stat in by_pid.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total = 0
    pending = [root]
    while pending:
        pid = pending.pop()
        total += by_pid[pid].ticks
        pending += children.get(pid, [])
    return total


def read_stats(proc: Path = PROC) -> list[ProcStat]:
    """Every process's stat, skipping those that exit while being read."""
    stats: list[ProcStat] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stats.append(parse_stat((entry / "stat").read_text()))
        except (OSError, ValueError):
            continue
    return stats


def tree_cpu_s(root: int, proc: Path = PROC) -> float | None:
    """User + system CPU seconds of ``root``'s process tree so far; None when it is gone."""
    ticks = tree_ticks(read_stats(proc), root)
    return None if ticks is None else ticks / os.sysconf("SC_CLK_TCK")
