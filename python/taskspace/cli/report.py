"""``taskspace report``: a self-contained HTML report of a TaskSpace (and of a probe run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from taskspace.cli import CliError, ExitCode
from taskspace.cli._common import read_space

EXAMPLE = """\
The report is one HTML file with inline SVG figures and CSS: it opens offline in any browser and
can be mailed or attached as it is. Sections: overview, similarity heatmap (clustered order), a
2-D map of the task space (PCA), prompt/model selection per dataset, probe usage.

examples:
  taskspace report space.sqlite --out report.html
  taskspace report space.sqlite --outputs outputs.jsonl --accuracy accuracy.json --out report.html

accuracy.json (optional) maps dataset -> candidate -> measured accuracy, shown next to the ranking:
  {"reviews": {"short": 0.91, "review": 0.87}}
"""


def register(sub: Any) -> None:
    """Add the ``report`` command."""
    parser = sub.add_parser(
        "report",
        help="write a self-contained HTML report (heatmap, task map, selection, probe usage)",
        description="Write a self-contained HTML report of a TaskSpace file and, optionally, of the "
        "probe run that produced its model embeddings.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("space", metavar="SPACE", help="a TaskSpace file")
    parser.add_argument(
        "--out", default="report.html", metavar="FILE", help="the HTML file (default: report.html)"
    )
    parser.add_argument(
        "--outputs", metavar="FILE", help="an outputs file of `taskspace probe` (probe usage)"
    )
    parser.add_argument("--accuracy", metavar="FILE", help="JSON: dataset -> candidate -> accuracy")
    parser.add_argument("--title", default=None, help="page title (default: taskspace report: SPACE)")
    parser.set_defaults(func=run)


def read_accuracy(path: str) -> dict[str, dict[str, float]]:
    """Read ``{"dataset": {"candidate": accuracy}}``; errors name the file and the field."""
    p = Path(path)
    if not p.is_file():
        raise CliError(f"{p}: no such file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CliError(f"{p}, line {e.lineno}: not valid JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise CliError(f"{p}: expected an object dataset -> {{candidate: accuracy}}")
    for d, row in data.items():
        if not isinstance(row, dict):
            raise CliError(f"{p}, field {d!r}: expected an object candidate -> accuracy")
        for c, v in row.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise CliError(f"{p}, field {d!r}.{c!r}: accuracy must be a number in [0, 1], got {v!r}")
    return data


def sections(args: argparse.Namespace) -> list[Any]:
    """The report's sections, in page order (add a section function here to extend the report)."""
    from taskspace.report import DEFAULT_SECTIONS

    return list(DEFAULT_SECTIONS)


def run(args: argparse.Namespace) -> int:
    """Collect the data, render the sections, write the file."""
    from taskspace.probing.result import ProbeResult
    from taskspace.report import build_report, report_data, write_report

    outputs = ProbeResult.load(args.outputs) if args.outputs else None
    accuracy = read_accuracy(args.accuracy) if args.accuracy else None
    with read_space(args.space) as space:
        if len(space) == 0:
            raise CliError(f"{args.space} is empty; add embeddings with `taskspace embed`", ExitCode.USAGE)
        data = report_data(
            space,
            title=args.title or f"taskspace report: {Path(args.space).name}",
            outputs=outputs,
            accuracy=accuracy,
        )
    path = write_report(args.out, build_report(data, sections=sections(args)))
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB); open it in a browser")
    return int(ExitCode.OK)
