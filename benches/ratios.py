"""Per group: every benchmark's median, and baseline median / taskspace median.

Usage::

    python benches/ratios.py /tmp/bench_embed.json

Reads a pytest-benchmark JSON file (``--benchmark-json``). A benchmark's implementation and thread
count come from ``extra_info`` (``impl``, ``threads``) or else from its name,
``test_<stage>_<impl>_<n>thread(s)``; within a group, each baseline (any impl other than
``taskspace``, e.g. ``reference``) is compared with the taskspace benchmark of the same thread count.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

TASKSPACE = "taskspace"
NAME = re.compile(r"^test_(?P<stage>.+?)_(?P<impl>[a-z0-9]+)_(?P<threads>\d+)threads?$")


def _parse(bench: dict[str, Any]) -> tuple[str, str]:
    """(impl, variant) of a benchmark: variant is its thread count, or "" when unknown."""
    info = bench.get("extra_info") or {}
    name = bench.get("name", "").split("[")[0]
    m = NAME.match(name)
    impl = info.get("impl") or (m.group("impl") if m else name)
    threads = info.get("threads") or (m.group("threads") if m else "")
    return str(impl), str(threads)


def _fmt(seconds: float) -> str:
    return f"{seconds * 1e3:10.2f} ms"


def report(data: dict[str, Any]) -> list[str]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for bench in data.get("benchmarks", []):
        groups.setdefault(bench.get("group") or "(no group)", []).append(bench)
    lines = []
    machine = data.get("machine_info", {})
    if machine:
        cpu = machine.get("cpu", {})
        lines.append(
            f"machine: {cpu.get('brand_raw', '?')} ({cpu.get('count', '?')} cpus), "
            f"python {machine.get('python_version', '?')}"
        )
    sources = {b.get("extra_info", {}).get("data") for b in data.get("benchmarks", [])} - {None}
    for source in sorted(sources):
        lines.append(f"data: {source}")
    for group in sorted(groups):
        benches = sorted(groups[group], key=lambda b: (_parse(b)[1], _parse(b)[0] != TASKSPACE, b["name"]))
        lines.append("")
        lines.append(f"group {group}")
        ours = {_parse(b)[1]: b["stats"]["median"] for b in benches if _parse(b)[0] == TASKSPACE}
        width = max(len(b["name"]) for b in benches)
        for b in benches:
            impl, variant = _parse(b)
            median = b["stats"]["median"]
            line = f"  {b['name']:<{width}}  median {_fmt(median)}  ({b['stats']['rounds']} rounds)"
            if impl != TASKSPACE:
                if variant in ours:
                    threads = f", {variant} thread{'s' if variant != '1' else ''}" if variant else ""
                    ratio = median / ours[variant]
                    line += f"  {impl} / {TASKSPACE} = {ratio:.2f}x{threads}"
                else:
                    line += f"  (no {TASKSPACE} benchmark to compare with)"
            lines.append(line)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json_file", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.json_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        print(f"cannot read {args.json_file}: {e}", file=sys.stderr)
        return 1
    if not data.get("benchmarks"):
        print(f"{args.json_file} holds no benchmarks", file=sys.stderr)
        return 1
    print("\n".join(report(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
