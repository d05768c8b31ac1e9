"""The ``taskspace`` command line.

Each command lives in its own module of this package and exposes ``register(subparsers)``, which adds
its parser and sets ``func`` (``args -> exit code``). ``main`` turns the package's errors into one-line
messages and meaningful exit codes (see ``ExitCode``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from enum import IntEnum

__all__ = ["CliError", "ExitCode", "main"]

# One module per command, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "demo",
    "probe",
    "embed",
    "compare",
    "select",
    "report",
    "drift",
    "evaluate",
    "serve",
    "serve_models",
)


class ExitCode(IntEnum):
    """Process exit codes of every ``taskspace`` command."""

    OK = 0
    FAILED = 1  # the work ran and failed (a model kept erroring, a port was taken, ...)
    USAGE = 2  # bad arguments, a bad config or input file: nothing was done
    INTERRUPTED = 130  # Ctrl-C: caches are consistent, the message says how to resume


class CliError(Exception):
    """An error a command reports as one line on stderr, with its exit code."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskspace",
        description="Datasets, models and prompted LLMs in one vector space of tasks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"taskspace.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``taskspace`` command; returns the process exit code."""
    from taskspace.errors import TaskspaceError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        args = parser.parse_args(["demo", *argv])
    try:
        return int(args.func(args))
    except CliError as e:
        print(f"taskspace {args.command}: {e}", file=sys.stderr)
        return int(e.code)
    except TaskspaceError as e:
        print(f"taskspace {args.command}: {e}", file=sys.stderr)
        return int(ExitCode.USAGE)
    except OSError as e:  # a file that cannot be read or written, a port that is taken
        print(f"taskspace {args.command}: {e}", file=sys.stderr)
        return int(ExitCode.FAILED)
    except KeyboardInterrupt:
        print(f"taskspace {args.command}: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)


if __name__ == "__main__":
    sys.exit(main())
