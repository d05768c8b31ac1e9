"""``taskspace select --dataset NAME``: rank candidate models/prompts for a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from taskspace.cli import CliError, ExitCode
from taskspace.cli._common import FORMATS, emit, read_space, render

EXAMPLE = """\
The dataset and the candidates must be in the space (`taskspace embed`). Candidates default to
every model entry; the one whose task embedding is nearest the dataset's ranks first.

examples:
  taskspace select space.sqlite --dataset reviews
  taskspace select space.sqlite --dataset reviews --candidates short,review,chain -k 3 --format json
  taskspace select space.sqlite --dataset reviews --prefix sentiment/
  taskspace select space.sqlite --dataset reviews --costs prices.toml --tolerance 0.02

prices.toml: one cost per call for every candidate (any currency), e.g.
  "qwen/short" = 0.0004
  "gpt-big/review" = 0.0120
With --costs the choice is the cheapest candidate within --tolerance (cosine) of the best one.
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
    parser.add_argument(
        "--costs", metavar="PRICES", help="TOML file: cost per call of every candidate (name = cost)"
    )
    parser.add_argument(
        "--tolerance", type=float, default=0.0, help="with --costs: cosine one may give up for a lower cost"
    )
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


def read_costs(path: str) -> dict[str, float]:
    """Candidate -> cost per call from a TOML file (``name = cost``, or under ``[costs]``)."""
    from taskspace._toml import TOMLDecodeError, loads

    try:
        source = Path(path).read_text(encoding="utf-8")
        data = loads(source)
    except OSError as e:
        raise CliError(f"--costs: cannot read {path} ({e.strerror})") from None
    except TOMLDecodeError as e:
        raise CliError(f"{path}: not valid TOML: {e}") from None
    table = data.get("costs", data)
    for name, value in table.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            line = next(
                (i for i, t in enumerate(source.splitlines(), 1) if t.strip().strip('"').startswith(name)),
                None,
            )
            where = f", line {line}" if line else ""
            raise CliError(
                f"{path}{where}: field {name!r} must be a cost per call (a number >= 0), got {value!r}"
            )
    return {name: float(value) for name, value in table.items()}


def _run_with_costs(args: argparse.Namespace) -> int:
    """Rank, choose the cheapest candidate within the tolerance, print the table and the reason."""
    from taskspace.errors import InvalidInputError

    costs = read_costs(args.costs)
    with read_space(args.space) as space:
        ranking(space, args)  # the same checks (dataset, candidates, -k) as without costs
        try:
            sel = space.select(args.dataset, candidates(space, args), costs=costs, tolerance=args.tolerance)
        except InvalidInputError as e:
            raise CliError(f"{args.costs}: {e}" if "cost" in str(e) else str(e)) from None
    header = ["rank", "candidate", "cosine", "cost/call", "chosen"]
    shown = sel if args.k is None else sel[: args.k]
    rows = [[i + 1, n, s, sel.costs[n], "*" if n == sel.choice else ""] for i, (n, s) in enumerate(shown)]
    heading = f"for dataset {args.dataset} choose {sel.choice}: {sel.reason}"
    emit(render(header, rows, args.format), args.output, heading=heading if args.format == "table" else None)
    return int(ExitCode.OK)


def run(args: argparse.Namespace) -> int:
    """Rank and print."""
    if args.costs:
        return _run_with_costs(args)
    with read_space(args.space) as space:
        ranked = ranking(space, args)
    header = ["rank", "candidate", "cosine"]
    rows = [[i + 1, name, score] for i, (name, score) in enumerate(ranked)]
    heading = f"for dataset {args.dataset} the best candidate is {ranked[0][0]} (cosine {ranked[0][1]:.4f})"
    emit(render(header, rows, args.format), args.output, heading=heading if args.format == "table" else None)
    return int(ExitCode.OK)
