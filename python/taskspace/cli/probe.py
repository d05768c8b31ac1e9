"""``taskspace probe CONFIG``: ask every model of a TOML config for its answers on the probe texts."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskspace.cli import CliError, ExitCode
from taskspace.cli._common import progress_printer, ray_module

EXAMPLE = """\
example config (probe.toml; every key is explained in docs/cli.md):
  [probe_set]
  version = 1            # the built-in probe set; or file = "texts.jsonl"
  n = 500                # optional: only the first 500 texts

  [output]
  cache = "probe.sqlite"       # answers already here are never asked again
  outputs = "outputs.jsonl"    # read by `taskspace embed --outputs`

  [limits]
  concurrency = 32
  deadline = 3600
  budget = { tokens = 2_000_000 }

  [endpoints.vllm]
  base_url = "http://127.0.0.1:8000/v1"
  model = "Qwen/Qwen2.5-1.5B-Instruct"
  api_key_env = "VLLM_API_KEY"   # optional: the NAME of the variable holding the key
  max_concurrency = 16
  rpm = 3000

  [prompts.short]
  endpoint = "vllm"
  template = "{text}\\nSentiment (positive or negative):"
  labels = { positive = ["positive", "good"], negative = ["negative", "bad"] }

example:
  taskspace probe probe.toml
  taskspace embed --space space.sqlite --outputs outputs.jsonl --dataset reviews.jsonl

Ctrl-C stops cleanly: every answer received so far is in the cache; run the same command again to
resume (only the missing answers are asked). Exit codes: 0 done, 1 some inputs failed (see the
summary), 2 bad config, 130 interrupted.
"""


def register(sub: Any) -> None:
    """Add the ``probe`` command."""
    parser = sub.add_parser(
        "probe",
        help="probe models/prompts on the probe set (TOML config) -> cache + outputs file",
        description="Ask every model and prompt of a TOML config for its answers on the probe texts, "
        "with the config's concurrency, rate limits, retries, budget and deadline. Answers go to a "
        "SQLite cache as they arrive (so a killed run resumes) and, at the end, to an outputs file "
        "for `taskspace embed`.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", metavar="CONFIG", help="the probe config (TOML)")
    parser.add_argument("--outputs", metavar="FILE", help="outputs file (overrides [output] outputs)")
    parser.add_argument("--cache", metavar="FILE", help="SQLite cache (overrides [output] cache)")
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="probe as Ray tasks (pip install taskspace[ray]) on the cluster at ADDRESS, else at "
        "RAY_ADDRESS, else on a local Ray; put it after CONFIG (see docs/distributed.md)",
    )
    parser.set_defaults(func=run)


@contextmanager
def _probe_log(*, enabled: bool) -> Iterator[None]:
    """Show the probe layer's log (what is cached, what is asked, budget and deadline stops) on
    stderr: the progress bar appears only on a terminal, this also in logs and CI."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("taskspace.probing")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _probe_on_ray(config: Any, args: argparse.Namespace) -> Any:
    """``--ray``: the same run as Ray tasks (:func:`taskspace.distributed.probe`)."""
    tsd = ray_module()
    for key, value in (("budget", config.budget), ("concurrency", config.concurrency)):
        if value is not None:
            raise CliError(
                f"{args.config}: [limits] {key} is not supported with --ray (it needs run-wide state "
                "at every request); remove it or run without --ray",
                ExitCode.USAGE,
            )
    return tsd.probe(
        config.models,
        config.texts,
        text_pairs=config.text_pairs,
        cache=config.cache,
        progress=not args.quiet,
        deadline=config.deadline,
        prices=config.prices or None,
        ray_address=args.ray or None,
    )


def _probe(config: Any, args: argparse.Namespace, probe: Any) -> Any:
    try:
        if args.ray is not None:
            return _probe_on_ray(config, args)
        return asyncio.run(
            probe(
                config.models,
                config.texts,
                text_pairs=config.text_pairs,
                cache=config.cache,
                progress=not args.quiet,
                **config.limits(),
            )
        )
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted; every answer received so far is in {config.cache}. "
            f"Resume with the same command: taskspace probe {args.config}",
            ExitCode.INTERRUPTED,
        ) from None


def run(args: argparse.Namespace) -> int:
    """Load the config, probe, write the outputs file; return the exit code."""
    from pathlib import Path

    from taskspace.probing.config import load_probe_config
    from taskspace.probing.runner import probe

    config = load_probe_config(args.config)
    if args.outputs:
        config.outputs = Path(args.outputs)
    if args.cache:
        config.cache = Path(args.cache)
    say = progress_printer(args.quiet)
    say(
        f"probing {len(config.models)} model(s) on {len(config.texts)} texts; "
        f"cache {config.cache}, outputs {config.outputs}"
    )
    config.cache.parent.mkdir(parents=True, exist_ok=True)
    with _probe_log(enabled=not args.quiet):
        result = _probe(config, args, probe)
    result.save(config.outputs, probe_set=config.probe_set, meta=config.meta)
    if not args.quiet:
        print(result.summary())
        print(f"wrote {config.outputs}")
    # Unparseable answers are the model's behaviour (cached, counted in the summary); failed and
    # skipped inputs are work left undone, which a re-run retries.
    incomplete = [m for m in result.models.values() if m.n_failed or m.skipped]
    if result.stop_reason or incomplete:
        why = result.stop_reason or f"{len(incomplete)} model(s) have failed inputs (see the summary)"
        print(
            f"taskspace probe: incomplete: {why}; re-running the same command asks only what is missing",
            file=sys.stderr,
        )
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)
