"""``taskspace embed``: datasets (JSONL/CSV/Parquet) and probed models -> a TaskSpace file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from taskspace.cli import CliError, ExitCode
from taskspace.cli._common import open_or_create_space, progress_printer, ray_module

EXAMPLE = """\
Datasets are files with columns text, label and (for pair tasks) text_pair: .jsonl, .csv, .tsv or
.parquet (Parquet needs pyarrow). A dataset is named after its file unless given as NAME=FILE.

example:
  taskspace embed --space space.sqlite --dataset reviews.jsonl --dataset nli=mnli_train.csv \\
      --outputs outputs.jsonl --mode text
  taskspace select space.sqlite --dataset reviews

The surrogate options (--features, --dim, --seed, --method) apply when the space file is new; an
existing space keeps the surrogate it was made with (giving different ones is an error). Entries
with an existing name are replaced.
"""


def register(sub: Any) -> None:
    """Add the ``embed`` command."""
    parser = sub.add_parser(
        "embed",
        help="embed dataset files (DTEs) and probed models (MTEs) into a TaskSpace file",
        description="Compute dataset task embeddings from labelled files and model task embeddings from "
        "an outputs file of `taskspace probe`, and store them in a TaskSpace (SQLite) file.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--space", required=True, metavar="FILE", help="the TaskSpace file (created if absent)"
    )
    parser.add_argument(
        "--dataset",
        action="append",
        default=[],
        metavar="[NAME=]FILE",
        help="a labelled dataset file (repeatable)",
    )
    parser.add_argument(
        "--outputs",
        action="append",
        default=[],
        metavar="FILE",
        help="an outputs file of `taskspace probe` (repeatable)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME",
        help="embed only these models of the outputs files",
    )
    parser.add_argument(
        "--mode",
        choices=["label", "text"],
        default=None,
        help="output encoding of a new space (default: text; an existing space keeps its mode)",
    )
    parser.add_argument(
        "--features", type=int, default=None, help="surrogate encoder size (new space; default 256)"
    )
    parser.add_argument("--dim", type=int, default=None, help="embedding size (new space; default 4096)")
    parser.add_argument("--seed", type=int, default=None, help="surrogate seed (new space; default 0)")
    parser.add_argument(
        "--method",
        choices=["operator", "fisher"],
        default=None,
        help="estimator (new space; default operator)",
    )
    parser.add_argument("--quiet", action="store_true", help="print only errors")
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="encode in Ray tasks (pip install taskspace[ray]) on the cluster at ADDRESS, else at "
        "RAY_ADDRESS, else on a local Ray; same embeddings, bit for bit (see docs/distributed.md)",
    )
    parser.set_defaults(func=run)


def _stats_of(sur: Any, ray_address: str | None) -> Any:
    """``sur.stats``, or the same statistics computed by Ray tasks with ``--ray``."""
    if ray_address is None:
        return sur.stats
    tsd = ray_module()
    address = ray_address or None
    return lambda *a, **kw: tsd.stats(sur, *a, ray_address=address, **kw)


def _surrogate_options(args: argparse.Namespace) -> dict[str, Any]:
    """The surrogate options given on the command line (for a new space, or to check an old one)."""
    return {
        k: getattr(args, k) for k in ("features", "dim", "seed", "method") if getattr(args, k) is not None
    }


def _named(spec: str) -> tuple[str | None, str]:
    name, sep, file = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return name, file
    return None, spec


def _read_inputs(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    """The dataset files and the probe results (only the models asked for), all read before
    anything is embedded, so a bad file or name changes nothing."""
    from taskspace.datasets.files import read_dataset
    from taskspace.probing.result import ProbeResult

    if not args.dataset and not args.outputs:
        raise CliError("nothing to embed: give --dataset FILE and/or --outputs FILE", ExitCode.USAGE)
    datasets = [read_dataset(file, name=name) for name, file in map(_named, args.dataset)]
    results = [ProbeResult.load(file) for file in args.outputs]
    if args.model is not None:
        missing = sorted(set(args.model) - {name for r in results for name in r.models})
        if missing:
            raise CliError(f"--model {missing[0]!r}: no such model in the outputs files", ExitCode.USAGE)
        for r in results:
            r.models = {name: m for name, m in r.models.items() if name in args.model}
    names = [d.name for d in datasets] + [name for r in results for name in r.models]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise CliError(f"the name {dup!r} is given twice; name datasets with NAME=FILE", ExitCode.USAGE)
    return datasets, results


def _space_mode(space: Any, args: argparse.Namespace) -> str:
    """The output encoding: the space's own, else ``--mode``, else text (a clash is a usage error)."""
    if args.mode is not None and space.mode is not None and args.mode != space.mode:
        raise CliError(f"{args.space} holds {space.mode}-mode embeddings, not {args.mode}", ExitCode.USAGE)
    return str(space.mode or args.mode or "text")


def run(args: argparse.Namespace) -> int:
    """Read every input first (so a bad file changes nothing), then embed and store."""
    say = progress_printer(args.quiet)
    datasets, results = _read_inputs(args)
    total = len(datasets) + sum(len(r) for r in results)
    with open_or_create_space(args.space, _surrogate_options(args)) as space:
        mode = _space_mode(space, args)
        sur = space.surrogate
        stats = _stats_of(sur, args.ray)

        batch: list[Any] = []  # stored together at the end: one transaction, all or nothing

        def add(kind: str, name: str, s: Any, meta: dict[str, Any]) -> None:
            e = sur.embed(s, name=name, kind=kind, meta=meta)
            if e.degenerate:
                say(f"note: {kind} {name!r} carries no information; its embedding is the zero vector")
            batch.append(e)

        done = 0
        t0 = time.perf_counter()
        for d in datasets:
            s = stats(d.texts, d.labels, text_pairs=d.text_pairs, mode=mode)
            add("dataset", d.name, s, {"dataset": d.name, "file": str(d.path)})
            done += 1
            say(f"[{done}/{total}] dataset {d.name}: {len(d)} examples")
        for name, m in ((name, m) for r in results for name, m in r.models.items()):
            if m.n_ok == 0:
                raise CliError(f"model {name!r} has no outputs to embed", ExitCode.FAILED)
            texts, pairs, outs = m.embedding_inputs(mode)
            meta = {"model": name, **m.meta, "probe_texts": len(m.outputs), "used": len(texts)}
            add("model", name, stats(texts, outs, text_pairs=pairs, mode=mode), meta)
            done += 1
            say(f"[{done}/{total}] model {name}: {len(texts)} of {len(m.outputs)} probe texts")
        space.add_many(batch, replace=True)
        if not args.quiet:
            print(
                f"{args.space}: {len(space)} embeddings ({len(space.names('dataset'))} datasets, "
                f"{len(space.names('model'))} models), {mode} mode, surrogate {space.fingerprint}; "
                f"{done} embedded in {time.perf_counter() - t0:.2f} s"
            )
    return int(ExitCode.OK)
