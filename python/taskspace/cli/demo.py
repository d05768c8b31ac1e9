"""``taskspace demo``: the offline end-to-end run."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from taskspace import datasets
from taskspace.similarity import similarity
from taskspace.surrogate import Surrogate


def _demo(args: argparse.Namespace) -> int:
    sur = Surrogate(seed=args.seed)
    print(f"taskspace demo: {sur!r}")
    print(f"embedding {len(datasets.BUILTIN)} built-in datasets ({args.mode} mode) ...", flush=True)
    start = time.perf_counter()
    embs = []
    for name in sorted(datasets.BUILTIN):
        texts, labels = datasets.load(name)
        embs.append(sur.dataset_embedding(texts, labels, mode=args.mode, name=name))
    elapsed = time.perf_counter() - start
    sims = similarity(embs)
    names = [e.name for e in embs]
    width = max(len(n) for n in names)
    print(f"done in {elapsed * 1000:.0f} ms. Cosine similarity of the dataset task embeddings:\n")
    print(" " * width + "  " + "  ".join(f"{n[:12]:>12}" for n in names))
    for name, row in zip(names, sims, strict=True):
        print(f"{name:>{width}}  " + "  ".join(f"{v:12.3f}" for v in row))
    print()
    for i, name in enumerate(names):
        others = [j for j in np.argsort(-sims[i]) if j != i]
        j = others[0]
        print(f"nearest task to {name}: {names[j]} (cosine {sims[i, j]:.3f})")
    return 0


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="embed the built-in example datasets and print how similar they are (offline)",
        description="Embed the built-in example datasets and print their similarity matrix. "
        "Needs no network and no data.\n\nexample:\n  taskspace demo --mode text",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--mode", choices=["label", "text"], default="text", help="output encoding (default: text)"
    )
    demo.add_argument("--seed", type=int, default=0, help="surrogate seed (default: 0)")
    demo.set_defaults(func=_demo)
