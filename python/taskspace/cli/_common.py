"""What several commands share: opening space files, the ``--ray`` guard, tables and output."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from taskspace.cli import CliError, ExitCode

if TYPE_CHECKING:
    from taskspace.space.task_space import TaskSpace

#: The output formats of ``compare`` and ``select``.
FORMATS = ("table", "csv", "json")


def read_space(path: str) -> TaskSpace:
    """Open an existing TaskSpace file (a usage error naming the commands that make one when it
    is missing)."""
    from taskspace.space.task_space import TaskSpace

    if not Path(path).is_file():
        raise CliError(f"{path}: no such space file (make one with `taskspace embed` or `taskspace demo`)")
    return TaskSpace.open(path)


def open_or_create_space(path: str | Path, surrogate_options: Mapping[str, Any]) -> TaskSpace:
    """The TaskSpace at ``path``: opened if the file exists (a usage error when a surrogate option
    given differs from the one the space was made with), else created with those options."""
    from taskspace.embedding.surrogate import Surrogate
    from taskspace.space.task_space import TaskSpace

    p = Path(path)
    if p.exists():
        space = TaskSpace.open(p)
        config = space.surrogate.config
        clash = {k: (v, config.get(k)) for k, v in surrogate_options.items() if config.get(k) != v}
        if clash:
            space.close()
            k, (given, stored) = next(iter(clash.items()))
            raise CliError(
                f"{p}: the space was made with {k}={stored!r}, not {given!r}; "
                "use a new --space file for another surrogate",
                ExitCode.USAGE,
            )
        return space
    p.parent.mkdir(parents=True, exist_ok=True)
    return TaskSpace(Surrogate(**surrogate_options), p)


def ray_module() -> ModuleType:
    """``taskspace.distributed`` for ``--ray``, or a usage error saying how to install Ray."""
    try:
        import taskspace.distributed as tsd
    except ImportError as e:
        raise CliError(str(e), ExitCode.USAGE) from None
    return tsd


def progress_printer(quiet: bool) -> Callable[..., None]:
    """A ``print`` to stderr (flushed, so progress shows in logs at once), silent when ``quiet``."""
    if quiet:
        return lambda *a: None
    return lambda *a: print(*a, file=sys.stderr, flush=True)


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


def emit(text: str, output: str | None, *, heading: str | None = None) -> None:
    """Write ``text`` to the ``--output`` file (saying so on stderr), or print it on stdout after
    ``heading`` (a line for people, left out of files)."""
    if output:
        Path(output).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
        return
    if heading is not None:
        print(heading)
    print(text)
