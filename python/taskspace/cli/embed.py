"""``taskspace embed``: datasets (JSONL/CSV/Parquet) and probed models -> a TaskSpace file."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from taskspace.cli import CliError, ExitCode

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
    try:
        import taskspace.distributed as tsd
    except ImportError as e:
        raise CliError(str(e), ExitCode.USAGE) from None
    address = ray_address or None
    return lambda *a, **kw: tsd.stats(sur, *a, ray_address=address, **kw)


def _surrogate(args: argparse.Namespace) -> Any:
    from taskspace.embedding.surrogate import Surrogate

    options = {
        k: getattr(args, k) for k in ("features", "dim", "seed", "method") if getattr(args, k) is not None
    }
    return Surrogate(**options), options


def open_space(args: argparse.Namespace) -> Any:
    """The TaskSpace of ``args.space``: opened if it exists (checking any surrogate options given
    against it), else created with the options."""
    from taskspace.space.task_space import TaskSpace

    path = Path(args.space)
    sur, options = _surrogate(args)
    if path.exists():
        space = TaskSpace.open(path)
        config = space.surrogate.config
        clash = {k: (v, config.get(k)) for k, v in options.items() if config.get(k) != v}
        if clash:
            space.close()
            k, (given, stored) = next(iter(clash.items()))
            raise CliError(
                f"{path}: the space was made with {k}={stored!r}, not {given!r}; "
                "use a new --space file for another surrogate",
                ExitCode.USAGE,
            )
        return space
    path.parent.mkdir(parents=True, exist_ok=True)
    return TaskSpace(sur, path)


def _named(spec: str) -> tuple[str | None, str]:
    name, sep, file = spec.partition("=")
    if sep and name and not Path(spec).exists():
        return name, file
    return None, spec


def run(args: argparse.Namespace) -> int:
    """Read every input first (so a bad file changes nothing), then embed and store."""
    from taskspace.datasets.files import read_dataset, read_outputs

    if not args.dataset and not args.outputs:
        raise CliError("nothing to embed: give --dataset FILE and/or --outputs FILE", ExitCode.USAGE)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, file=sys.stderr, flush=True))
    datasets = [read_dataset(file, name=name) for name, file in map(_named, args.dataset)]
    outputs = [read_outputs(file) for file in args.outputs]
    wanted = None if args.model is None else set(args.model)
    if wanted is not None:
        found = {name for o in outputs for name in o.models}
        missing = sorted(wanted - found)
        if missing:
            raise CliError(f"--model {missing[0]!r}: no such model in the outputs files", ExitCode.USAGE)
    names = [d.name for d in datasets] + [
        m for o in outputs for m in o.models if wanted is None or m in wanted
    ]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise CliError(f"the name {dup!r} is given twice; name datasets with NAME=FILE", ExitCode.USAGE)

    space = open_space(args)
    with space:
        mode = space.mode or args.mode or "text"
        if args.mode is not None and space.mode is not None and args.mode != space.mode:
            raise CliError(
                f"{args.space} holds {space.mode}-mode embeddings, not {args.mode}", ExitCode.USAGE
            )
        sur = space.surrogate
        stats = _stats_of(sur, args.ray)

        def add(kind: str, name: str, s: Any, meta: dict[str, Any]) -> None:
            e = sur.embed(s, name=name, kind=kind, meta=meta)
            if e.degenerate:
                say(f"note: {kind} {name!r} carries no information; its embedding is the zero vector")
            space.add(e, replace=True)

        total = len(names)
        done = 0
        t0 = time.perf_counter()
        for d in datasets:
            s = stats(d.texts, d.labels, text_pairs=d.text_pairs, mode=mode)
            add("dataset", d.name, s, {"dataset": d.name, "file": str(d.path)})
            done += 1
            say(f"[{done}/{total}] dataset {d.name}: {len(d)} examples")
        for o in outputs:
            for name, m in o.models.items():
                if wanted is not None and name not in wanted:
                    continue
                texts, pairs, outs = m.embedding_inputs(o.texts, o.text_pairs, mode)
                if not texts:
                    raise CliError(f"model {name!r} has no outputs to embed", ExitCode.FAILED)
                meta = {"model": name, **m.meta, "probe_texts": len(o.texts), "used": len(texts)}
                add("model", name, stats(texts, outs, text_pairs=pairs, mode=mode), meta)
                done += 1
                say(f"[{done}/{total}] model {name}: {len(texts)} of {len(o.texts)} probe texts")
        if not args.quiet:
            print(
                f"{args.space}: {len(space)} embeddings ({len(space.names('dataset'))} datasets, "
                f"{len(space.names('model'))} models), {mode} mode, surrogate {space.fingerprint}; "
                f"{done} embedded in {time.perf_counter() - t0:.2f} s"
            )
    return int(ExitCode.OK)
