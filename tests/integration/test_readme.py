"""Every runnable example in README.md runs against a real server and prints what the README shows.

How an example is marked runnable (every other block of the README is left alone):

    <!-- example -->
    ```sh
    curl -s localhost:5000/v1/models/iris:predict -d '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    # {"predictions":[0]}
    ```

- The line right before the opening fence is ``<!-- example -->`` (GitHub does not show it).
  Languages: ``sh`` (run by bash with ``set -euo pipefail``) and ``python``.
- The full-line comments after a command (a Python statement, in ``python`` blocks) are its
  expected output, compared line by line with trailing spaces stripped; ``...`` in a line
  matches any text. A command with no such comments only has to succeed. So explanations go in
  the prose or in trailing comments (``cmd  # why``), never on a line of their own.
- ``localhost:5000`` and ``127.0.0.1:5000`` are replaced by the test server's address.
- The examples run in README order against one server started as ``make run`` starts it (the
  demo store, ``iris`` as the default model, the default two workers) plus
  ``PREDICTION_ADMIN_TOKEN`` (exported to the examples too), in a directory holding that
  ``model_store``; ``python`` is the interpreter running the tests.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import pytest

from tests.helpers import ServerProcess
from tests.helpers import require_tool
from tests.helpers import serve_process

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "<!-- example -->"
LANGUAGES = ("sh", "python")
README_ADDRESS = re.compile(r"\b(localhost|127\.0\.0\.1):5000\b")
# Printed between two steps' outputs, so each step's output can be told apart.
SEPARATOR = "\x1e-- next step --\x1e"
ADMIN_TOKEN = "readme-example-token-0123456789"
EXAMPLE_TIMEOUT_S = 120.0


@dataclass
class Step:
    """One command (or Python statement) and the output the README shows under it."""

    source: str
    expected: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Example:
    line: int
    language: str
    source: str

    def steps(self) -> list[Step]:
        return sh_steps(self.source) if self.language == "sh" else python_steps(self.source)


def examples(text: str) -> list[Example]:
    """The blocks of ``text`` marked runnable, in order."""
    lines = text.splitlines()
    found: list[Example] = []
    for index, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = lines[index + 1] if index + 1 < len(lines) else ""
        language = fence.removeprefix("```").strip()
        if not fence.startswith("```") or language not in LANGUAGES:
            raise AssertionError(
                f"README.md line {index + 1}: {MARKER} must be followed by a ```sh or ```python "
                f"block, not {fence!r}"
            )
        end = next(i for i in range(index + 2, len(lines)) if lines[i].strip() == "```")
        found.append(Example(index + 3, language, "\n".join(lines[index + 2 : end])))
    return found


def _comment(line: str) -> str | None:
    """The text of a full-line comment (``# text``), or None for any other line."""
    stripped = line.strip()
    if not stripped.startswith("#"):
        return None
    return stripped[2:] if stripped.startswith("# ") else stripped[1:]


def sh_steps(source: str) -> list[Step]:
    """Split a shell block into commands, each with the comment lines that follow it."""
    steps: list[Step] = []
    pending: list[str] = []
    for line in source.splitlines():
        comment = _comment(line) if not pending else None
        if comment is not None:
            if steps:
                steps[-1].expected.append(comment)
            continue
        if not pending and not line.strip():
            continue
        pending.append(line)
        command = "\n".join(pending)
        if command.endswith("\\"):
            continue
        try:
            shlex.split(command, comments=True)
        except ValueError:  # a quote is still open: the command goes on
            continue
        steps.append(Step(command))
        pending = []
    if pending:
        raise AssertionError(f"unfinished shell command: {pending!r}")
    return steps


def python_steps(source: str) -> list[Step]:
    """Split a Python block into top-level statements, each with the comment lines after it."""
    lines = source.splitlines()
    statements = ast.parse(source).body
    steps: list[Step] = []
    for position, statement in enumerate(statements):
        start, end = statement.lineno - 1, statement.end_lineno or statement.lineno
        following = statements[position + 1].lineno - 1 if position + 1 < len(statements) else None
        expected = [c for c in map(_comment, lines[end:following]) if c is not None]
        steps.append(Step("\n".join(lines[start:end]), expected))
    return steps


def script(example: Example, steps: list[Step], port: int) -> str:
    """The program that runs ``steps`` and prints SEPARATOR after each."""
    here = f"\\1:{port}"
    if example.language == "sh":
        marker = f"printf '\\n%s\\n' '{SEPARATOR}'"
        body = [f"{README_ADDRESS.sub(here, step.source)}\n{marker}" for step in steps]
        return "set -euo pipefail\n" + "\n".join(body) + "\n"
    marker = f"print({chr(10) + SEPARATOR!r}, flush=True)"
    return "\n".join(f"{README_ADDRESS.sub(here, step.source)}\n{marker}" for step in steps) + "\n"


def matches(expected: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual) is not None


def mismatches(steps: list[Step], output: str, port: int) -> list[str]:
    """What differs between each step's expected and actual output, one entry per step."""
    chunks = output.split(f"\n{SEPARATOR}\n")
    problems = []
    for step, chunk in zip(steps, chunks, strict=False):
        if not step.expected:
            continue
        expected = [README_ADDRESS.sub(f"\\1:{port}", line).rstrip() for line in step.expected]
        actual = [line.rstrip() for line in chunk.strip("\n").splitlines()]
        if len(expected) != len(actual) or not all(map(matches, expected, actual)):
            problems.append(
                f"$ {step.source}\nexpected:\n"
                + "\n".join(expected)
                + "\ngot:\n"
                + "\n".join(actual)
            )
    return problems


EXAMPLES = examples(README.read_text())


@pytest.fixture(name="readme_env", scope="module")
def _readme_env(
    tmp_path_factory: pytest.TempPathFactory, demo_store_template: Path
) -> Iterator[tuple[ServerProcess, Path, dict[str, str]]]:
    """The server and the working directory the README's examples assume."""
    workdir = tmp_path_factory.mktemp("readme")
    shutil.copytree(demo_store_template, workdir / "model_store")
    names = [name for name in os.environ if name.startswith(("PREDICTION_", "PROMETHEUS_"))]
    base = {name: value for name, value in os.environ.items() if name not in names}
    env = {
        **base,
        # `python` in the examples is this interpreter, with the service installed.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PREDICTION_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    server_env = {
        "PREDICTION_DEFAULT_MODEL": "iris",
        "PREDICTION_WORKERS": "2",
        "PREDICTION_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    with serve_process(
        workdir, "--model-store", str(workdir / "model_store"), env=server_env
    ) as server:
        yield server, workdir, env


def test_readme_marks_examples_in_every_language() -> None:
    """The README has runnable examples of both kinds, so a broken marker cannot hide them."""
    assert {"sh", "python"} == {example.language for example in EXAMPLES}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"line-{e.line}-{e.language}")
def test_readme_example(
    example: Example, readme_env: tuple[ServerProcess, Path, dict[str, str]]
) -> None:
    """The example runs as written and prints what the README shows under each command."""
    server, workdir, env = readme_env
    require_tool("curl")
    port = int(server.url.rsplit(":", 1)[1])
    steps = example.steps()
    program = script(example, steps, port)
    command = (
        ["bash", "-c", program] if example.language == "sh" else [sys.executable, "-c", program]
    )

    result = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=EXAMPLE_TIMEOUT_S,
        check=False,
    )

    assert 0 == result.returncode, f"README.md line {example.line} failed:\n{result.stderr}"
    problems = mismatches(steps, result.stdout, port)
    assert not problems, f"README.md line {example.line}:\n" + "\n\n".join(problems)


def test_harness_splits_commands_and_reports_a_mismatch() -> None:
    """Commands split at their end (continuations and open quotes kept); ``...`` matches text."""
    steps = sh_steps("echo a\n# a\necho b \\\n  c\n# b ...\necho 'x\n# y'\n# z")

    problems = mismatches(steps, f"a\n{SEPARATOR}\nb c\n{SEPARATOR}\nx\n# y\n{SEPARATOR}\n", 1)

    assert [
        Step("echo a", ["a"]),
        Step("echo b \\\n  c", ["b ..."]),
        Step("echo 'x\n# y'", ["z"]),
    ] == steps
    assert ["$ echo 'x\n# y'\nexpected:\nz\ngot:\nx\n# y"] == problems
