"""``taskspace select --dataset NAME``: rank candidate models/prompts for a dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from taskspace.cli import CliError, ExitCode
from taskspace.cli.compare import FORMATS, open_space, render

EXAMPLE = """\
The dataset and the candidates must be in the space (`taskspace embed`). Candidates default to
every model entry; the one whose task embedding is nearest the dataset's ranks first.

examples:
  taskspace select space.sqlite --dataset reviews
  taskspace select space.sqlite --dataset reviews --candidates short,review,chain -k 3 --format json
  taskspace select space.sqlite --dataset reviews --prefix sentiment/
"""


def register(sub: Any) -> None:
    """Add the ``select`` command."""
    parser = sub.add_parser(
        "select",
        help="rank candidate models/prompts for a dataset (TaskSpace.select)",
        description="Rank candidate models or prompts for a dataset by the cosine similarity of their "
        "task embeddings with the dataset's: the best-suited prompt comes first.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("space", metavar="SPACE", help="a TaskSpace file")
    parser.add_argument("--dataset", required=True, metavar="NAME", help="the dataset entry to choose for")
    parser.add_argument(
        "--candidates", metavar="A,B,...", help="comma-separated candidate names (default: all models)"
    )
    parser.add_argument("--prefix", metavar="P", help="only candidates whose name starts with P")
    parser.add_argument("-k", type=int, default=None, help="show only the top k")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(func=run)


def candidates(space: Any, args: argparse.Namespace) -> list[str] | None:
    """The candidate names asked for (``None``: every model entry)."""
    names: list[str] | None = None
    if args.candidates:
        names = [n.strip() for n in args.candidates.split(",") if n.strip()]
        missing = [n for n in names if n not in space]
        if missing:
            raise CliError(f"--candidates: no entry named {missing[0]!r} in {args.space}")
    if args.prefix:
        pool = names if names is not None else space.names("model")
        names = [n for n in pool if n.startswith(args.prefix)]
        if not names:
            raise CliError(f"--prefix {args.prefix!r}: no candidate starts with it")
    return names


def ranking(space: Any, args: argparse.Namespace) -> list[tuple[str, float]]:
    """The candidates ranked for ``args.dataset``, best first (cut to ``-k``)."""
    if args.dataset not in space:
        known = ", ".join(space.names("dataset")[:10]) or "none"
        raise CliError(f"--dataset: no entry named {args.dataset!r} in {args.space} (datasets: {known})")
    ranked = space.select(args.dataset, candidates(space, args))
    if not ranked:
        raise CliError(f"{args.space} holds no candidate models to rank", ExitCode.USAGE)
    if args.k is not None:
        if args.k < 1:
            raise CliError(f"-k must be >= 1, got {args.k}")
        ranked = ranked[: args.k]
    return ranked


def run(args: argparse.Namespace) -> int:
    """Rank and print."""
    with open_space(args.space) as space:
        ranked = ranking(space, args)
    header = ["rank", "candidate", "cosine"]
    rows = [[i + 1, name, score] for i, (name, score) in enumerate(ranked)]
    text = render(header, rows, args.format)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        if args.format == "table":
            print(
                f"for dataset {args.dataset} the best candidate is {ranked[0][0]} (cosine {ranked[0][1]:.4f})"
            )
        print(text)
    return int(ExitCode.OK)
