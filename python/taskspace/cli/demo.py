"""``taskspace demo``: the whole pipeline offline, in one command.

1. Split each built-in dataset (:mod:`taskspace.datasets.builtin`) into two halves: the first half is the
   labelled data the task space sees (its DTE, and the in-context demonstrations), the second half
   only measures each prompt's accuracy afterwards.
2. Define local prompt-driven models (:mod:`taskspace.models`): zero-shot prompts with good, plain,
   vague and swapped label descriptions, and in-context prompts with right and wrong demonstrations.
3. Serve them on 127.0.0.1 with the OpenAI-compatible model server and probe them **over HTTP**
   through the probe layer (soft labels from logprobs), on the built-in probe set.
4. Embed datasets (DTEs) and prompts (MTEs) with one surrogate into a TaskSpace file, rank each
   dataset's prompts, and print the ranking next to each prompt's measured accuracy.
5. Write the outputs file, the accuracies and the HTML report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from taskspace.cli import CliError, ExitCode

EXAMPLE = """\
example:
  taskspace demo                      # writes ./taskspace-demo/{space.sqlite,outputs.jsonl,report.html}
  taskspace demo --out /tmp/demo --seed 1 --quiet

Then explore the result with the other commands:
  taskspace select taskspace-demo/space.sqlite --dataset movie_sentiment
  taskspace compare taskspace-demo/space.sqlite --rows dataset --columns model
"""

#: Built-in datasets of the demo and the prompt family that suits each.
DEMO_DATASETS: dict[str, str] = {
    "movie_sentiment": "sentiment",
    "product_sentiment": "sentiment",
    "news_topic": "topic",
    "question_type": "question",
}
#: Probe texts used (a prefix of the built-in probe set is balanced across its categories).
DEMO_PROBE_TEXTS = 800

_SENTIMENT = {
    "positive": [
        "great, I loved it, wonderful and brilliant",
        "excellent, perfect, the best, I would happily recommend it",
        "beautiful, funny, charming, moving and clever",
        "works perfectly, comfortable, fast and reliable",
    ],
    "negative": [
        "awful, I hated it, terrible and boring",
        "the worst, a waste of time and money, I want a refund",
        "dull, flat, lifeless, no sense, a mess",
        "broke after a week, stopped working, slow and cheap",
    ],
}
_TOPIC = {
    "sports": ["sports: the team won the match", "a league title, the coach, the players and the season"],
    "business": ["business: profit, the bank and the market", "company shares, prices, sales and investors"],
    "science": ["science: researchers discover", "a study by scientists, astronomers and the lab"],
    "world": [
        "world news: the government and the election",
        "international talks, the minister and the border",
    ],
}
_QUESTION = {
    "person": ["who, which person, the inventor or author", "who was the man or woman who wrote it"],
    "place": ["where, which place, the city or country", "where is it located, in which region"],
    "number": ["how many, how much, what number", "how many years, how far, how long, how tall"],
}


def split(name: str) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """(seen, held-out) halves of a built-in dataset: even rows and odd rows (labels stay balanced)."""
    from taskspace.datasets import builtin as datasets

    texts, labels = datasets.load(name)
    return (texts[0::2], labels[0::2]), (texts[1::2], labels[1::2])


def _rotate(mapping: dict[str, Any]) -> dict[str, Any]:
    """Each label gets the next label's value: a prompt whose descriptions or labels are wrong."""
    keys = list(mapping)
    return {k: mapping[keys[(i + 1) % len(keys)]] for i, k in enumerate(keys)}


def _demos(texts: list[str], labels: list[str], n: int, rng: random.Random) -> list[tuple[str, str]]:
    idx = list(range(len(texts)))
    rng.shuffle(idx)
    return [(texts[i], labels[i]) for i in sorted(idx[:n])]


def demo_models(seed: int = 0) -> dict[str, tuple[str, Any]]:
    """The demo's prompted local models: name -> (family, model). Names are ``family/prompt``."""
    from taskspace.models import InContext, ZeroShot

    rng = random.Random(seed)
    out: dict[str, tuple[str, Any]] = {}

    def add(family: str, prompt: str, model_cls: Any, *args: Any, **kwargs: Any) -> None:
        name = f"{family}/{prompt}"
        out[name] = (family, model_cls(*args, name=name, **kwargs))

    add("sentiment", "zs-descriptive", ZeroShot, "This review is {}.", _SENTIMENT)
    add(
        "sentiment",
        "zs-label-names",
        ZeroShot,
        "This review is {}.",
        {"positive": "positive", "negative": "negative"},
    )
    add("sentiment", "zs-vague", ZeroShot, "It is {}.", {"positive": "a thing", "negative": "another thing"})
    add("sentiment", "zs-swapped", ZeroShot, "This review is {}.", _rotate(_SENTIMENT))
    movie = _demos(*split("movie_sentiment")[0], 20, rng)
    add("sentiment", "icl-movie-demos", InContext, movie, k=3)
    add("sentiment", "icl-product-demos", InContext, _demos(*split("product_sentiment")[0], 20, rng), k=3)
    # The same demonstrations with every label flipped: a prompt that teaches the opposite task.
    flipped = [(t, "negative" if y == "positive" else "positive") for t, y in movie]
    add("sentiment", "icl-flipped-demos", InContext, flipped, k=3)

    for family, descriptions, template, dataset in (
        ("topic", _TOPIC, "This headline is about {}.", "news_topic"),
        ("question", _QUESTION, "The question asks {}.", "question_type"),
    ):
        add(family, "zs-descriptive", ZeroShot, template, descriptions)
        add(family, "zs-label-names", ZeroShot, template, {k: k for k in descriptions})
        add(family, "zs-rotated", ZeroShot, template, _rotate(descriptions))
        seen = split(dataset)[0]
        demos = _demos(*seen, 20, rng)
        add(family, "icl-demos", InContext, demos, k=3)
        wrong_label = _rotate({k: k for k in descriptions})
        add(family, "icl-wrong-demos", InContext, [(t, wrong_label[y]) for t, y in demos], k=3)
    return out


async def probe_over_http(
    models: dict[str, Any],
    texts: list[str],
    *,
    progress: bool,
    groups: list[list[str]] | None = None,
    on_group: Any = None,
) -> Any:
    """Serve ``models`` on 127.0.0.1 (a free port) and probe each through the probe layer's HTTP
    path: one :class:`~taskspace.Prompted` per model, the text as the prompt, its labels as
    verbalizers, so outputs are soft labels read from the server's logprobs.

    ``groups`` (lists of model names) are probed one after the other, calling
    ``on_group(names, result)`` after each (progress without a terminal); the results are merged
    into one :class:`~taskspace.probing.ProbeResult`.
    """
    from taskspace.models.server import model_server
    from taskspace.probing.endpoints import OpenAIEndpoint
    from taskspace.probing.prompted import Prompted
    from taskspace.probing.result import ProbeResult, Usage
    from taskspace.probing.runner import probe

    async with model_server(models) as base_url:
        prompted = {
            name: Prompted(
                OpenAIEndpoint(base_url, name, max_concurrency=8, timeout=30),
                "{text}",
                labels=list(m.labels),
                name=name,
            )
            for name, m in models.items()
        }
        merged = ProbeResult(models={}, usage=Usage(), stop_reason=None, elapsed=0.0)
        for names in groups or [list(models)]:
            result = await probe([prompted[n] for n in names], texts, progress=progress, seed=0)
            merged.models.update(result.models)
            merged.usage = merged.usage.merge(result.usage)
            merged.stop_reason = merged.stop_reason or result.stop_reason
            merged.elapsed += result.elapsed
            if on_group is not None:
                on_group(names, result)
        return merged


def _say(quiet: bool) -> Any:
    start = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:5.1f} s] {message}", file=sys.stderr, flush=True)

    return say


@dataclass
class DemoResult:
    """What :func:`run_demo` made: file paths, per-dataset rankings and stage timings (seconds)."""

    out: Path
    selection: dict[str, list[Any]]  # dataset -> SelectionRow list, best first
    summaries: dict[str, dict[str, Any]]  # dataset -> selection_summary
    timings: dict[str, float] = field(default_factory=dict)
    requests: int = 0
    errors: int = 0


def _probe_stage(models: dict[str, tuple[str, Any]], texts: list[str], *, quiet: bool, say: Any) -> Any:
    """Serve and probe the demo's models over HTTP, one family after the other; raises
    :class:`~taskspace.ProbeError` when any request failed (the local server never should)."""
    from taskspace.errors import ProbeError

    say(
        f"serving {len(models)} local prompt-driven models on 127.0.0.1; probing each over HTTP on {len(texts)} probe texts"
    )
    families = list(dict.fromkeys(fam for fam, _ in models.values()))
    groups = [[n for n, (fam, _) in models.items() if fam == f] for f in families]

    def done(names: list[str], r: Any) -> None:
        family = models[names[0]][0]
        say(f"probed the {len(names)} {family} prompts: {r.usage.calls} requests in {r.elapsed:.1f} s")

    result = asyncio.run(
        probe_over_http(
            {n: m for n, (_, m) in models.items()}, texts, progress=not quiet, groups=groups, on_group=done
        )
    )
    u = result.usage
    say(f"probed: {u.calls} requests, {u.errors} errors, {u.total_tokens} tokens in {result.elapsed:.1f} s")
    if u.errors:
        raise ProbeError(f"{u.errors} probe requests to the local model server failed:\n{result.summary()}")
    return result


def _embed_datasets(
    space: Any, models: dict[str, tuple[str, Any]], mode: str
) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    """Add each demo dataset's DTE (its seen half) to ``space``; return the accuracy of each of
    its candidate prompts on the held-out half, and the candidates per dataset."""
    sur = space.surrogate
    accuracy: dict[str, dict[str, float]] = {}
    candidates: dict[str, list[str]] = {}
    for dataset, family in DEMO_DATASETS.items():
        (seen_t, seen_y), (held_t, held_y) = split(dataset)
        meta = {"dataset": dataset, "split": "even rows"}
        space.add(sur.dataset_embedding(seen_t, seen_y, mode=mode, name=dataset, meta=meta))
        names = [n for n, (fam, _) in models.items() if fam == family]
        candidates[dataset] = names
        # Ground truth, measured on the held-out half the task space never sees.
        accuracy[dataset] = {
            n: float(np.mean(np.array(models[n][1].predict(held_t)) == np.array(held_y))) for n in names
        }
    return accuracy, candidates


def _notes(seed: int, mode: str, n_models: int, n_texts: int) -> list[str]:
    return [
        f"Made by <code>taskspace demo --seed {seed} --mode {mode}</code>: {n_models} local prompt-driven models "
        f"(zero-shot and in-context prompts) served on 127.0.0.1 and probed over HTTP on {n_texts} texts "
        "of the built-in probe set; dataset embeddings from the even rows of each built-in dataset; accuracies "
        "measured on the odd rows. The local models use a hashed n-gram encoder, so their accuracies are "
        "modest and close to each other; the ranking is judged against them honestly.",
    ]


def _fresh_space_path(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    space_path = out / "space.sqlite"
    for stale in (space_path, Path(f"{space_path}-wal"), Path(f"{space_path}-shm")):
        stale.unlink(missing_ok=True)  # a previous demo's space may have another seed
    return space_path


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    probe_texts: int = DEMO_PROBE_TEXTS,
    mode: Literal["text", "label"] = "text",
    quiet: bool = False,
) -> DemoResult:
    """Run the demo pipeline (see the module doc) and write its files to ``out``.

    ``mode="text"`` (default) embeds outputs as label words, so a prompt with swapped labels is
    told apart from the right one; ``mode="label"`` embeds the soft labels (FUTE's setting), which
    only see how a prompt partitions the inputs and so cannot tell swapped labels apart.

    Stage lines go to stderr unless ``quiet``. Raises :class:`~taskspace.probing.ProbeError` when
    any probe request failed (the local server should never fail).
    """
    from taskspace.embedding.surrogate import Surrogate
    from taskspace.probing.texts import probe_set
    from taskspace.report import build_report, report_data, selection_summary, write_report
    from taskspace.space.task_space import TaskSpace

    if mode not in ("text", "label"):
        raise ValueError(f"mode must be 'text' or 'label', got {mode!r}")
    say = _say(quiet)
    timings: dict[str, float] = {}
    out = Path(out)
    space_path = _fresh_space_path(out)

    t0 = time.perf_counter()
    models = demo_models(seed)
    texts = probe_set(n=probe_texts)
    result = _probe_stage(models, texts, quiet=quiet, say=say)
    timings["probe"] = time.perf_counter() - t0
    meta = {n: {"family": fam, "kind": m.kind, "prompt": m.prompt} for n, (fam, m) in models.items()}
    result.save(out / "outputs.jsonl", probe_set={"version": 1, "n": len(texts)}, meta=meta)

    t0 = time.perf_counter()
    sur = Surrogate(seed=seed)
    with TaskSpace(sur, space_path) as space:
        accuracy, candidates = _embed_datasets(space, models, mode)
        say(f"embedded {len(DEMO_DATASETS)} datasets (DTEs)")
        for name in models:
            space.add(result[name].embedding(sur, mode=mode, meta={"family": models[name][0]}))
        timings["embed"] = time.perf_counter() - t0
        say(f"embedded {len(models)} prompted models (MTEs) with surrogate {sur.fingerprint} -> {space_path}")
        (out / "accuracy.json").write_text(json.dumps(accuracy, indent=2) + "\n", encoding="utf-8")
        t0 = time.perf_counter()
        data = report_data(
            space,
            title="taskspace demo",
            accuracy=accuracy,
            candidates=candidates,
            notes=_notes(seed, mode, len(models), len(texts)),
            outputs=result,
        )
    report = write_report(out / "report.html", build_report(data))
    timings["report"] = time.perf_counter() - t0
    say(f"wrote {report}")
    return DemoResult(
        out=out,
        selection=data.selection,
        summaries={d: selection_summary(rows) for d, rows in data.selection.items()},
        timings=timings,
        requests=result.usage.calls,
        errors=result.usage.errors,
    )


def _demo(args: argparse.Namespace) -> int:
    from taskspace.errors import ProbeError

    try:
        demo = run_demo(
            args.out, seed=args.seed, probe_texts=args.probe_texts, mode=args.mode, quiet=args.quiet
        )
    except ProbeError as e:
        raise CliError(str(e), ExitCode.FAILED) from None
    ratios = [s["selected_over_oracle"] for s in demo.summaries.values()]
    rhos = [s["spearman"] for s in demo.summaries.values() if s["spearman"] is not None]
    for dataset, rows in demo.selection.items():
        _print_ranking(dataset, rows, demo.summaries[dataset])
    print(
        f"\nmean over {len(ratios)} datasets: selected / oracle accuracy {np.mean(ratios):.2f}, "
        f"Spearman rho(cosine, accuracy) {np.mean(rhos) if rhos else float('nan'):.2f}"
    )
    space_path = demo.out / "space.sqlite"
    print(
        f"\nfiles in {demo.out}/: space.sqlite (the TaskSpace), outputs.jsonl (probe outputs), accuracy.json, "
        f"report.html\nnext: taskspace select {space_path} --dataset movie_sentiment\n"
        f"      taskspace compare {space_path} --rows dataset --columns model"
    )
    return int(ExitCode.OK)


def _print_ranking(dataset: str, rows: list[Any], s: dict[str, Any]) -> None:
    best = rows[0]
    print(
        f"\nfor dataset {dataset} the best prompt is {best.candidate} (cosine {best.cosine:.3f}, "
        f"accuracy {best.accuracy:.2f}); the most accurate is {s['oracle']} ({s['oracle_accuracy']:.2f}): "
        f"selected / oracle {s['selected_over_oracle']:.2f}"
        + (f", Spearman rho {s['spearman']:.2f}" if s["spearman"] is not None else "")
    )
    width = max(len(r.candidate) for r in rows)
    print(f"  {'rank':>4}  {'prompt':<{width}}  {'cosine':>7}  {'accuracy (held out)':>19}")
    for k, r in enumerate(rows, start=1):
        mark = "  <- most accurate" if r.candidate == s["oracle"] else ""
        print(f"  {k:>4}  {r.candidate:<{width}}  {r.cosine:>7.3f}  {r.accuracy:>19.2f}{mark}")


def register(sub: Any) -> None:
    """Add the ``demo`` command."""
    demo = sub.add_parser(
        "demo",
        help="the whole pipeline offline: local models over HTTP -> task space -> ranked prompts + HTML report",
        description="Serve local prompt-driven models on 127.0.0.1, probe them over HTTP with the built-in "
        "probe set, embed the built-in datasets and the prompts into one task space, print which prompt "
        "suits each dataset (next to each prompt's measured accuracy) and write an HTML report. Needs no "
        "network, no API keys and no data.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument(
        "--out", default="taskspace-demo", metavar="DIR", help="output directory (default: ./taskspace-demo)"
    )
    demo.add_argument(
        "--seed", type=int, default=0, help="surrogate seed and choice of demonstrations (default: 0)"
    )
    demo.add_argument(
        "--probe-texts",
        type=int,
        default=DEMO_PROBE_TEXTS,
        metavar="N",
        help=f"probe texts per model (default: {DEMO_PROBE_TEXTS})",
    )
    demo.add_argument(
        "--mode",
        choices=["text", "label"],
        default="text",
        help="output encoding: text (label words; default) or label (soft labels, blind to swapped labels)",
    )
    demo.add_argument("--quiet", action="store_true", help="print only the ranked tables")
    demo.set_defaults(func=_demo)
