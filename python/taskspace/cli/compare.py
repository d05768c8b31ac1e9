"""``taskspace compare``: similarities between the entries of a TaskSpace, as a table, CSV or JSON."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskspace.cli import CliError, ExitCode

FORMATS = ("table", "csv", "json")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "" if v is None else str(v)


def render(header: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """``rows`` under ``header`` as an aligned text table, CSV, or JSON (a list of objects)."""
    if fmt == "json":
        return json.dumps([dict(zip(header, r, strict=True)) for r in rows], indent=2, ensure_ascii=False)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([[("" if v is None else v) for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    cells = [list(header)] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]
    numeric = [all(isinstance(r[j], (int, float)) for r in rows) and bool(rows) for j in range(len(header))]
    lines = []
    for i, row in enumerate(cells):
        parts = [
            c.rjust(w) if numeric[j] else c.ljust(w) for j, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


EXAMPLE = """\
examples:
  taskspace compare space.sqlite                              # all entries x all entries
  taskspace compare space.sqlite --rows dataset --columns model --format csv > sims.csv
  taskspace compare space.sqlite --nearest movie_sentiment -k 5 --kind model
  taskspace compare space.sqlite --format json --output sims.json
"""


def register(sub: Any) -> None:
    """Add the ``compare`` command."""
    parser = sub.add_parser(
        "compare",
        help="similarity matrix or nearest neighbours of a TaskSpace's entries",
        description="Print the cosine similarities between the task embeddings of a TaskSpace file: a "
        "matrix (rows x columns, each all entries or one kind), or the nearest entries of one entry.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("space", metavar="SPACE", help="a TaskSpace file (from `taskspace embed` or `demo`)")
    parser.add_argument("--rows", choices=["all", "dataset", "model"], default="all", help="entries as rows")
    parser.add_argument(
        "--columns", choices=["all", "dataset", "model"], default="all", help="entries as columns"
    )
    parser.add_argument(
        "--nearest", metavar="NAME", help="list the entries nearest to NAME instead of a matrix"
    )
    parser.add_argument("-k", type=int, default=10, help="with --nearest: how many (default 10)")
    parser.add_argument(
        "--kind", choices=["all", "dataset", "model"], default="all", help="with --nearest: candidates' kind"
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")
    parser.set_defaults(func=run)


def open_space(path: str) -> Any:
    """Open an existing TaskSpace file for reading (a clear error when it is missing)."""
    from taskspace.space import TaskSpace

    if not Path(path).is_file():
        raise CliError(f"{path}: no such space file (make one with `taskspace embed` or `taskspace demo`)")
    return TaskSpace.open(path)


def _kind(k: str) -> str | None:
    return None if k == "all" else k


def matrix(space: Any, rows: str | None, columns: str | None) -> tuple[list[str], list[str], Any]:
    """(row names, column names, cosine matrix) of two kinds of entries (``None`` = all)."""
    import numpy as np

    from taskspace.similarity import similarity

    r = space.names(rows)
    c = space.names(columns)
    if not r or not c:
        return r, c, np.zeros((len(r), len(c)), dtype=np.float32)
    a = np.stack([space.get(n).vector for n in r])
    b = a if rows == columns else np.stack([space.get(n).vector for n in c])
    return r, c, similarity(a, b)


def run(args: argparse.Namespace) -> int:
    """Compute what was asked and write it in the chosen format."""
    with open_space(args.space) as space:
        if args.nearest is not None:
            if args.k < 1:
                raise CliError(f"-k must be >= 1, got {args.k}")
            if args.nearest not in space:
                raise CliError(f"--nearest: no entry named {args.nearest!r} in {args.space}")
            found = space.nearest(args.nearest, k=args.k, kind=_kind(args.kind))
            kinds = {n: space.info(n).kind for n, _ in found}
            header = ["rank", "name", "kind", "cosine"]
            rows: list[list[Any]] = [[i + 1, n, kinds[n], s] for i, (n, s) in enumerate(found)]
        else:
            names_r, names_c, sims = matrix(space, _kind(args.rows), _kind(args.columns))
            if not names_r or not names_c:
                raise CliError(f"{args.space} holds no entries of the kinds asked", ExitCode.USAGE)
            header = ["name", *names_c]
            rows = [[n, *map(float, sims[i])] for i, n in enumerate(names_r)]
    text = render(header, rows, args.format)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    return int(ExitCode.OK)
