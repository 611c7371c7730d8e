"""``python -m bench [flags]``: parse the flags, run the bench, exit 0, 1 (``--strict``) or 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench import BenchError
from bench.options import BenchOptions
from bench.options import add_arguments

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench with ``argv``'s flags and return the process exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Load-test the service against the tutorial Flask service and others.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        options = BenchOptions.from_args(args)
        # Imported after the flags are checked: the run pulls in numpy, scikit-learn, matplotlib.
        from bench.runner import main as run

        return run(options)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
