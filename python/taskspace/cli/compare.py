"""``taskspace compare``: similarities between the entries of a TaskSpace, as a table, CSV or JSON."""

from __future__ import annotations

import argparse
from typing import Any

from taskspace.cli import CliError, ExitCode
from taskspace.cli._common import FORMATS, emit, ray_module, read_space, render

EXAMPLE = """\
examples:
  taskspace compare space.sqlite                              # all entries x all entries
  taskspace compare space.sqlite --rows dataset --columns model --format csv > sims.csv
  taskspace compare space.sqlite --nearest movie_sentiment -k 5 --kind model
  taskspace compare space.sqlite --format json --output sims.json
  taskspace compare space.sqlite --agreement outputs.jsonl     # answers' agreement beside MTE similarity
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
    parser.add_argument(
        "--agreement",
        metavar="OUTPUTS",
        help="an outputs file of `taskspace probe`: print how often its models give the same answers "
        "(Cohen's kappa; exact agreement for text outputs) beside their MTE similarity",
    )
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="compute the matrix as Ray tasks (pip install taskspace[ray]) on the cluster at ADDRESS, "
        "else at RAY_ADDRESS, else on a local Ray; put it after SPACE (see docs/distributed.md)",
    )
    parser.set_defaults(func=run)


def _kind(k: str) -> str | None:
    return None if k == "all" else k


def matrix(
    space: Any, rows: str | None, columns: str | None, *, ray_address: str | None = None
) -> tuple[list[str], list[str], Any]:
    """(row names, column names, cosine matrix) of two kinds of entries (``None`` = all); with
    ``ray_address`` (``""``: the default Ray connection) computed by Ray tasks, same numbers."""
    import numpy as np

    from taskspace.search.cosine import similarity

    r = space.names(rows)
    c = space.names(columns)
    if not r or not c:
        return r, c, np.zeros((len(r), len(c)), dtype=np.float32)
    a = np.stack([space.get(n).vector for n in r])
    b = a if rows == columns else np.stack([space.get(n).vector for n in c])
    if ray_address is None:
        return r, c, similarity(a, b)
    tsd = ray_module()
    # Every row's top len(c) is the whole row, sorted: put the scores back in column order.
    top = tsd.topk(a, b, k=len(c), ray_address=ray_address or None)
    sims = np.empty((len(r), len(c)), dtype=np.float32)
    np.put_along_axis(sims, top.ids, top.scores, axis=1)
    return r, c, sims


def _answers(m: Any) -> list[Any]:
    """One answer per input of a :class:`~taskspace.probing.result.ModelResult`: the most likely
    label of a label model, the text of a text model; ``None`` where it has none."""
    return m.predictions() if m.mode == "label" else list(m.outputs)


def _agreement(args: argparse.Namespace) -> str:
    """MTE similarity and answer agreement of the models of an outputs file that are in the space."""
    import math

    import numpy as np

    from taskspace.probing.agreement import agreement_matrix
    from taskspace.probing.result import ProbeResult
    from taskspace.search.cosine import similarity

    probe = ProbeResult.load(args.agreement)
    with read_space(args.space) as space:
        names = [n for n in probe.models if n in space]
        if len(names) < 2:
            raise CliError(
                f"--agreement: fewer than two models of {args.agreement} have an embedding in {args.space} "
                "(add them with `taskspace embed`)"
            )
        sims = similarity(np.stack([space.get(n).vector for n in names]))
    mode = "text" if all(probe.models[n].mode == "text" for n in names) else "label"
    _, kappa, exact = agreement_matrix({n: _answers(probe.models[n]) for n in names}, mode=mode)
    metric, values = ("exact agreement", exact) if mode == "text" else ("Cohen's kappa", kappa)
    if args.format == "table":
        head = ["name", *names]
        left = render(head, [[n, *map(float, sims[i])] for i, n in enumerate(names)], "table")
        right = render(head, [[n, *map(float, values[i])] for i, n in enumerate(names)], "table")
        return f"MTE cosine similarity\n{left}\n\nanswers' agreement ({metric})\n{right}"
    header = ["model_a", "model_b", "cosine", "exact", "kappa"]
    rows = [
        [a, b, float(sims[i, j]), *(None if math.isnan(v) else float(v) for v in (exact[i, j], kappa[i, j]))]
        for i, a in enumerate(names)
        for j, b in enumerate(names)
        if i < j
    ]
    return render(header, rows, args.format)


def run(args: argparse.Namespace) -> int:
    """Compute what was asked and write it in the chosen format."""
    if args.agreement:
        emit(_agreement(args), args.output)
        return int(ExitCode.OK)
    with read_space(args.space) as space:
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
            names_r, names_c, sims = matrix(
                space, _kind(args.rows), _kind(args.columns), ray_address=args.ray
            )
            if not names_r or not names_c:
                raise CliError(f"{args.space} holds no entries of the kinds asked", ExitCode.USAGE)
            header = ["name", *names_c]
            rows = [[n, *map(float, sims[i])] for i, n in enumerate(names_r)]
    emit(render(header, rows, args.format), args.output)
    return int(ExitCode.OK)
