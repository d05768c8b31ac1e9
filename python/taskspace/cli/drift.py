"""``taskspace drift CONFIG --space FILE``: has an API model changed since we measured it?"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from taskspace.cli import CliError, ExitCode

#: One line of the command's table: model name, what happened, whether it failed.
Row = tuple[str, str, bool]

EXAMPLE = """\
CONFIG is a `taskspace probe` config (see `taskspace probe --help`): its models and prompts, endpoints,
limits and probe set. The first run for a model probes it on the first --n probe texts and keeps
its answers in the space as the baseline; every later run asks the model again on exactly those
texts (never from the probe cache: a drift check must see the model as it is now), compares the
two runs (taskspace.embedding.drift: MTE shift, bootstrap interval, noise floor) and stores the result with
a timestamp. `taskspace report` shows each model's drift history.

example:
  taskspace drift probe.toml --space space.sqlite --n 500          # first run: baselines
  taskspace drift probe.toml --space space.sqlite                  # later: check for drift
  taskspace drift probe.toml --space space.sqlite --model qwen/short --fail-on-drift

Exit codes: 0 checked (or baselines stored), 1 a model failed to answer, or drifted with
--fail-on-drift, 2 bad config or arguments, 130 interrupted (nothing is stored for a model
whose check did not finish; run the command again).
"""


def register(sub: Any) -> None:
    """Add the ``drift`` command."""
    parser = sub.add_parser(
        "drift",
        help="re-probe models and test whether they changed since their stored baseline",
        description="Re-probe the models of a probe config on their stored probe subset (bypassing the "
        "cache) and report, per model, the MTE shift against the stored baseline with a bootstrap "
        "interval and a noise floor; results are stored with a timestamp in the space.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", metavar="CONFIG", help="the probe config (TOML)")
    parser.add_argument("--space", required=True, metavar="FILE", help="the task space (created if absent)")
    parser.add_argument("--model", action="append", metavar="NAME", help="only this model (repeatable)")
    parser.add_argument("--n", type=int, default=500, help="probe texts for a new baseline (default 500)")
    parser.add_argument("--n-boot", type=int, default=200, help="bootstrap rounds (default 200)")
    parser.add_argument("--alpha", type=float, default=0.05, help="interval level 1 - alpha (default 0.05)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--rebaseline", action="store_true", help="replace the models' baselines by this run")
    parser.add_argument("--fail-on-drift", action="store_true", help="exit 1 when a model drifted")
    parser.set_defaults(func=run)


def _answers(m: Any, mode: str) -> list[Any]:
    """A model's outputs aligned with its texts, JSON-ready (soft rows as lists), None where missing."""
    ok = set(m.ok_indices())
    if mode == "text":
        return [
            m.outputs[i] if i in ok and isinstance(m.outputs[i], str) else None for i in range(len(m.outputs))
        ]
    if any(o is not None and not isinstance(o, str) for o in m.outputs):
        probs = m.probs()
        return [[float(x) for x in probs[i]] if i in ok else None for i in range(len(m.outputs))]
    return [m.outputs[i] if i in ok else None for i in range(len(m.outputs))]


def _probe(config: Any, models: list[Any], texts: list[str], pairs: list[str] | None, args: Any) -> Any:
    from taskspace.probing.runner import probe

    try:
        # cache=None: a drift check must ask the model now, never replay stored answers.
        return asyncio.run(
            probe(
                models,
                texts,
                text_pairs=pairs,
                cache=None,
                progress=False,
                **config.limits(),
            )
        )
    except KeyboardInterrupt:
        raise CliError(
            f"interrupted; nothing was stored for the models being checked. Run again: taskspace drift {args.config} "
            f"--space {args.space}",
            ExitCode.INTERRUPTED,
        ) from None


def _check_args(args: argparse.Namespace) -> None:
    for flag, value, low in (("--n", args.n, 8), ("--n-boot", args.n_boot, 20)):
        if value < low:
            raise CliError(f"{flag} must be >= {low}, got {value}")
    if not 0 < args.alpha < 1:
        raise CliError(f"--alpha must be in (0, 1), got {args.alpha}")


def _chosen_models(config: Any, args: argparse.Namespace) -> list[Any]:
    """The config's models, or those named by ``--model`` (a usage error for an unknown name)."""
    models = config.models
    if not args.model:
        return list(models)
    known = {m.name for m in models}
    missing = [name for name in args.model if name not in known]
    if missing:
        raise CliError(
            f"{args.config}: no model named {', '.join(missing)} (models: {', '.join(sorted(known))})"
        )
    return [m for m in models if m.name in set(args.model)]


def _store_baselines(
    space: Any, config: Any, new: list[Any], args: argparse.Namespace, mode: str
) -> list[Row]:
    """Probe the new models on the first ``--n`` texts and store their answers as baselines."""
    texts = config.texts[: args.n]
    pairs = None if config.text_pairs is None else config.text_pairs[: args.n]
    result = _probe(config, new, texts, pairs, args)
    rows: list[Row] = []
    for m in new:
        answers = _answers(result[m.name], mode)
        answered = sum(a is not None for a in answers)
        if answered < 8:
            rows.append((m.name, f"FAILED: only {answered} answers; no baseline", True))
            continue
        space.set_drift_baseline(m.name, texts, answers, text_pairs=pairs, mode=mode)
        rows.append((m.name, f"baseline stored ({answered} of {len(texts)} texts)", False))
    return rows


def _check_drift(space: Any, config: Any, m: Any, args: argparse.Namespace) -> tuple[Row, bool]:
    """Re-probe one model on its baseline texts and record the drift test; ``(row, drifted)``."""
    import numpy as np

    from taskspace.embedding.drift import drift

    base = space.drift_baseline(m.name)
    assert base is not None
    result = _probe(config, [m], base["texts"], base["text_pairs"], args)
    now = _answers(result[m.name], base["mode"])
    keep = [
        i
        for i, (a, b) in enumerate(zip(base["outputs"], now, strict=True))
        if a is not None and b is not None
    ]
    if len(keep) < 8:
        return (m.name, f"FAILED: only {len(keep)} texts answered in both runs", True), False
    then = [base["outputs"][i] for i in keep]
    current = [now[i] for i in keep]
    soft = (isinstance(then[0], list), isinstance(current[0], list))
    if soft[0] != soft[1]:
        why = "FAILED: one run has label probabilities, the other plain labels; use --rebaseline"
        return (m.name, why, True), False
    report = drift(
        space.surrogate,
        [base["texts"][i] for i in keep],
        np.array(then) if soft[0] else then,
        np.array(current) if soft[1] else current,
        text_pairs=None if base["text_pairs"] is None else [base["text_pairs"][i] for i in keep],
        mode=base["mode"],
        n_boot=args.n_boot,
        alpha=args.alpha,
        seed=args.seed,
    )
    when = space.record_drift(m.name, report)
    return (m.name, f"{report}  [{when:%Y-%m-%d %H:%M} UTC]", False), report.drifted


def run(args: argparse.Namespace) -> int:
    """Store baselines for new models, check the others for drift; return the exit code."""
    from taskspace.cli._common import open_or_create_space
    from taskspace.probing.config import load_probe_config

    _check_args(args)
    config = load_probe_config(args.config)
    models = _chosen_models(config, args)
    drifted = False
    with open_or_create_space(Path(args.space), {}) as space:
        mode = space.mode or "label"
        new = [m for m in models if args.rebaseline or space.drift_baseline(m.name) is None]
        rows = _store_baselines(space, config, new, args, mode) if new else []
        new_names = {m.name for m in new}
        for m in models:
            if m.name not in new_names:
                row, changed = _check_drift(space, config, m, args)
                rows.append(row)
                drifted |= changed
    width = max(len(name) for name, _, _ in rows) if rows else 0
    for name, text, _ in rows:
        print(f"{name.ljust(width)}  {text}")
    if any(failed for _, _, failed in rows):
        print("taskspace drift: some models could not be checked (see above)", file=sys.stderr)
        return int(ExitCode.FAILED)
    return int(ExitCode.FAILED if drifted and args.fail_on_drift else ExitCode.OK)
