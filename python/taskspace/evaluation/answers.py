"""Models' answers in the suite: asked through the probe layer (timed), and embedded as MTEs.

Every model is probed through :func:`taskspace.probing.runner.probe_sync`, so answers land in the
SQLite probe cache and a repeated run only reads them back.
"""

from __future__ import annotations

import time
from pathlib import Path

from taskspace.embedding.surrogate import Surrogate
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.probing.adaptive import Adaptive
from taskspace.probing.endpoints import CallableModel
from taskspace.probing.result import ModelResult, ProbeResult
from taskspace.probing.runner import probe_sync

__all__ = ["mte", "timed_probe"]


def timed_probe(
    models: list[CallableModel],
    texts: list[str],
    *,
    pairs: list[str] | None,
    cache: Path | None,
    progress: bool,
    adaptive: Adaptive | None = None,
) -> tuple[ProbeResult, float]:
    """Every model's answers on ``texts`` (and ``pairs``), and the seconds that took."""
    t0 = time.perf_counter()
    res = probe_sync(models, texts, text_pairs=pairs, cache=cache, progress=progress, adaptive=adaptive)
    return res, time.perf_counter() - t0


def mte(sur: Surrogate, result: ModelResult, mode: str, name: str) -> TaskEmbedding:
    """The model's MTE from its answers, built silently: a prompt that answers one label everywhere
    is a real (bad) candidate whose zero MTE scores 0, not something to warn about."""
    return sur.embed(result.stats(sur, mode=mode), name=name, kind="model")  # type: ignore[arg-type]
