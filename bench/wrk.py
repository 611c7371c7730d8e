"""Running ``wrk`` (Debian's 4.1.0, with Lua): its POST script, the command, parsing its output.

:func:`parse_wrk_output` is a pure function of wrk's text, so it is tested on captured outputs.
Only what wrk itself reports is used: completed requests, the run time, latency percentiles
(``--latency``), non-2xx/3xx responses and socket errors (connect, read, write, time-out).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench import BenchError

__all__ = [
    "LUA_SCRIPT",
    "WrkResult",
    "parse_duration_s",
    "parse_wrk_output",
    "run_wrk",
    "write_script",
    "wrk_path",
]

# One script for every run: the body comes from the file named by the first script argument
# (``wrk ... URL -- BODY_FILE``). wrk.lua calls ``init`` before it formats the request once per
# thread, so every request is the same pre-built bytes and wrk spends no Lua time per request.
LUA_SCRIPT: Final = """\
-- POST the JSON body read from the file named by the first script argument.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
end
"""

_TIME_UNITS_S: Final = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME: Final = r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h)"
_REQUESTS = re.compile(r"^\s*([0-9]+) requests in " + _TIME + r",", re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)%\s+" + _TIME + r"\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)"
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: ([0-9]+)")
_REQUESTS_PER_S = re.compile(r"^Requests/sec:\s+([0-9]+(?:\.[0-9]+)?)", re.MULTILINE)


@dataclass(frozen=True, slots=True, kw_only=True)
class WrkResult:
    """What one wrk run reports.

    ``requests`` counts completed responses, whatever their status; time-outs are not among
    them, and their latency is not in the percentiles (wrk drops it).
    """

    requests: int
    duration_s: float
    requests_per_s: float
    p50_s: float | None
    """Median latency; None when no request completed."""
    p99_s: float | None
    non_2xx: int
    """Responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses")."""
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    timeouts: int = 0

    @property
    def errors(self) -> int:
        """Every failed request: error statuses, socket errors and client time-outs."""
        return (
            self.non_2xx
            + self.connect_errors
            + self.read_errors
            + self.write_errors
            + self.timeouts
        )

    @property
    def ok_requests_per_s(self) -> float:
        """Successful responses per second (wrk's Requests/sec counts error statuses too)."""
        if self.requests == 0:
            return 0.0
        return self.requests_per_s * (self.requests - self.non_2xx) / self.requests

    def error_breakdown(self) -> dict[str, int]:
        """The non-zero error counts by kind, for reports."""
        counts = {
            "non-2xx": self.non_2xx,
            "connect": self.connect_errors,
            "read": self.read_errors,
            "write": self.write_errors,
            "timeout": self.timeouts,
        }
        return {kind: count for kind, count in counts.items() if count}


def parse_duration_s(text: str) -> float:
    """``"2.23s"``, ``"312.00us"``, ``"1.50m"`` ... in seconds, as wrk prints times.

    Raises:
        ValueError: not a number followed by one of wrk's units (us, ms, s, m, h).
    """
    match = re.fullmatch(_TIME, text.strip())
    if match is None:
        raise ValueError(f"not a wrk time: {text!r}")
    return float(match.group(1)) * _TIME_UNITS_S[match.group(2)]


def parse_wrk_output(text: str) -> WrkResult:
    """Parse what ``wrk --latency`` printed.

    Raises:
        ValueError: the text lacks the "N requests in T" or "Requests/sec" line (wrk failed).
    """
    requests_match = _REQUESTS.search(text)
    rate_match = _REQUESTS_PER_S.search(text)
    if requests_match is None or rate_match is None:
        first_line = text.strip().splitlines()[0] if text.strip() else "no output"
        raise ValueError(f"not a complete wrk report: {first_line}")
    requests = int(requests_match.group(1))
    duration_s = float(requests_match.group(2)) * _TIME_UNITS_S[requests_match.group(3)]
    percentiles = {
        float(match.group(1)): float(match.group(2)) * _TIME_UNITS_S[match.group(3)]
        for match in _PERCENTILE.finditer(text)
    }
    if requests and (50.0 not in percentiles or 99.0 not in percentiles):
        raise ValueError("the wrk report has no latency distribution (run it with --latency)")
    socket = _SOCKET_ERRORS.search(text)
    connect, read, write, timeout = (int(n) for n in socket.groups()) if socket else (0, 0, 0, 0)
    non_2xx = _NON_2XX.search(text)
    return WrkResult(
        requests=requests,
        duration_s=duration_s,
        requests_per_s=float(rate_match.group(1)),
        # With nothing completed wrk prints 0.00us everywhere, which is no latency at all.
        p50_s=percentiles[50.0] if requests else None,
        p99_s=percentiles[99.0] if requests else None,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        connect_errors=connect,
        read_errors=read,
        write_errors=write,
        timeouts=timeout,
    )


def wrk_path() -> str:
    """The ``wrk`` executable.

    Raises:
        BenchError: wrk is not installed.
    """
    path = shutil.which("wrk")
    if path is None:
        raise BenchError(
            "wrk is not installed; install Debian's package: apt-get install wrk "
            "(or run scripts/install-tools as root)"
        )
    return path


def write_script(directory: Path) -> Path:
    """Write :data:`LUA_SCRIPT` into ``directory`` and return its path."""
    path = directory / "post.lua"
    path.write_text(LUA_SCRIPT)
    return path


def run_wrk(
    url: str,
    *,
    script: Path,
    body: Path,
    connections: int,
    duration_s: int,
    timeout_s: int,
    threads: int = 1,
) -> WrkResult:
    """Drive ``url`` with POSTs of ``body`` for ``duration_s`` seconds and parse the report.

    Durations are whole seconds: wrk 4.1 rejects fractions.

    wrk stops by itself after ``-d``; the process is still killed if it overruns by a margin.

    Raises:
        BenchError: wrk failed (e.g. could not connect at all) or overran.
    """
    command = [
        wrk_path(),
        "-t",
        str(min(threads, connections)),
        "-c",
        str(connections),
        "-d",
        f"{duration_s}s",
        "--timeout",
        f"{timeout_s}s",
        "--latency",
        "-s",
        str(script),
        url,
        "--",
        str(body),
    ]
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=duration_s + timeout_s + 30.0,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run kills wrk before it raises.
        raise BenchError(f"wrk did not finish within {duration_s + timeout_s + 30.0:g} s") from None
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip() or f"exit {completed.returncode}"
        raise BenchError(f"wrk failed against {url}: {detail}")
    try:
        return parse_wrk_output(completed.stdout)
    except ValueError as error:
        raise BenchError(f"wrk against {url}: {error}") from None
