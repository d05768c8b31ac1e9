"""Zero-shot prompt selection on real LLMs (Gemma 3 270M, SmolLM2-135M-Instruct): the experiment script.

Starts one `taskspace serve-models` process per model (one thread each), probes every prompt of
taskspace.evaluation.llm_prompts through the probe layer (cached under ~/.cache/taskspace-llm-eval, so
a killed run resumes where it stopped), scores taskspace against MI, GE, LE, MDL, ZPS and random, and
prints the tables. See docs/llm.md. The full run needs about 5 core-hours.

Example:
    python tools/llm_eval.py --data ../shared/data --json llm-results.json
    python tools/llm_eval.py --data ../shared/data --models gemma-3-270m --tasks sst2_movie_sentiment \\
        sms_spam --prompts-per-task 4 --n-test 40 --n-probe 60 --resamples 200   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from taskspace.evaluation import llm as ev
from taskspace.evaluation.llm_prompts import KINDS, TASKS
from taskspace.evaluation.llm_serving import MODELS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("Example:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    p.add_argument("--tasks", nargs="+", choices=list(TASKS), help="default: all eight")
    p.add_argument("--prompts-per-task", type=int, default=len(KINDS))
    p.add_argument("--n-probe", type=int, default=1000, help="probe texts per MTE (default 1000)")
    p.add_argument("--n-test", type=int, default=300, help="test texts per task (default 300)")
    p.add_argument("--equal-budgets", type=int, nargs="+", default=[100, 300])
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--cache-dir", type=Path, help="default: ~/.cache/taskspace-llm-eval")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not (args.data / "tasks").is_dir():
        print(f"skipped: evaluation data not found at {args.data}", file=sys.stderr)
        return 0
    results = ev.run(
        args.data,
        models=args.models,
        tasks=args.tasks,
        prompts_per_task=args.prompts_per_task,
        n_probe=args.n_probe,
        n_test=args.n_test,
        equal_budgets=args.equal_budgets,
        cache_dir=args.cache_dir,
        resamples=args.resamples,
        seed=args.seed,
        progress=not args.quiet,
    )
    print(ev.format_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
