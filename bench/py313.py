"""The service on Python 3.13 (the image's Python), as a second (a) row beside the default one.

The bench builds a virtualenv with that interpreter (``--py313-venv``, default
``.bench-venv-3.13`` in the working directory) holding an editable install of this checkout, so
it runs the same code as the default row. It is built once and rebuilt only when
``pyproject.toml`` changes (a stamp file holds its hash), as the Makefile's ``.venv`` is. When no
working Python 3.13 is found, or the bench itself already runs on 3.13, the row is skipped with
one line saying why.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bench import CHECKOUT
from bench import BenchError

__all__ = ["Interpreter", "find_python313", "prepare_venv"]

PROBE_TIMEOUT_S: Final = 30.0
# Building the venv downloads and installs numpy, scipy and scikit-learn for 3.13 the first time.
INSTALL_TIMEOUT_S: Final = 1200.0
_STAMP: Final = ".installed"


@dataclass(frozen=True, slots=True)
class Interpreter:
    """A found Python 3.13: its path, and the version it reported."""

    executable: str
    version: str


def find_python313(
    name: str, *, own_version: tuple[int, int] = sys.version_info[:2]
) -> Interpreter | str:
    """The Python 3.13 that ``name`` runs, or why there is none (one line).

    ``own_version`` is the bench's own Python's (major, minor).
    """
    if own_version == (3, 13):
        return "the bench's own Python is 3.13, so (a) already runs on it"
    executable = shutil.which(name)
    if executable is None:
        return f"{name} is not on the PATH"
    try:
        probe = subprocess.run(
            [executable, "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{executable} did not run: {error}"
    version = probe.stdout.strip()
    if probe.returncode != 0:
        # A pyenv shim for a version that is installed but not selected fails this way.
        first = (probe.stderr.strip().splitlines() or [f"exit {probe.returncode}"])[0]
        return f"{executable} did not run: {first}"
    if not version.startswith("3.13."):
        return f"{executable} is Python {version}, not 3.13"
    return Interpreter(executable, version)


def _project_hash() -> str:
    return hashlib.sha256((CHECKOUT / "pyproject.toml").read_bytes()).hexdigest()


def prepare_venv(interpreter: Interpreter, venv: Path) -> tuple[Path, bool]:
    """The venv's python, creating or refreshing the venv first; and whether it was (re)built.

    Raises:
        BenchError: the venv or the install failed (with the tail of pip's output).
    """
    # Absolute: the servers run in a working directory of the bench's own.
    venv = venv.resolve()
    python = venv / "bin" / "python"
    stamp = venv / _STAMP
    wanted = _project_hash()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python, False
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
    steps = [
        [interpreter.executable, "-m", "venv", str(venv)],
        [*pip, "--upgrade", "pip"],
        [*pip, "--editable", str(CHECKOUT)],
    ]
    for step in steps:
        try:
            done = subprocess.run(
                step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"{' '.join(step)} took over {INSTALL_TIMEOUT_S:g} s") from None
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            raise BenchError(
                f"building {venv} for Python 3.13 failed ({' '.join(step)}):\n{tail}\n"
                f"leave it out with --servers, or pass another interpreter with --py313"
            )
    stamp.write_text(wanted + "\n")
    return python, True
