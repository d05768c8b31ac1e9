"""Model identification: which task is a black-box classifier for? Its MTE ranked against every DTE.

One black-box classifier per task (scikit-learn TF-IDF + logistic regression: features unrelated to
the surrogate's) is probed on the probe corpus through the probe layer; its MTE is ranked against
every task's DTE (train split). Top-1 and MRR for both estimators (``operator``, ``fisher``) and
both modes (``label`` with the classifier's class probabilities, ``text`` with its predicted
label names).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskspace.embedding.surrogate import Surrogate
from taskspace.evaluation.answers import mte, timed_probe
from taskspace.evaluation.data import EvalData, Task, join_pairs
from taskspace.evaluation.metrics import identification_ranks
from taskspace.evaluation.progress import Log
from taskspace.probing.endpoints import CallableModel
from taskspace.probing.result import ModelResult
from taskspace.probing.texts import pair_probe
from taskspace.search.cosine import similarity

__all__ = ["BlackBox", "model_identification"]


class BlackBox:
    """A task's black-box classifier (TF-IDF word 1-2-grams + logistic regression), trained on first
    use: with a warm probe cache its answers are read back and it is never trained."""

    def __init__(self, task: Task, seed: int) -> None:
        self.task = task
        self.seed = seed
        self.classes = sorted(set(task.train.labels))  # = LogisticRegression.classes_
        self.train_seconds = 0.0
        self.trained = False
        self._fit: tuple[Any, Any] | None = None
        self._lock = threading.Lock()

    def _train(self) -> tuple[Any, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        t0 = time.perf_counter()
        train = self.task.train
        vec = TfidfVectorizer(sublinear_tf=True, min_df=2, ngram_range=(1, 2))
        clf = LogisticRegression(max_iter=3000, C=10.0, random_state=self.seed)
        clf.fit(vec.fit_transform(join_pairs(train.texts, train.pairs)), train.labels)
        if [str(c) for c in clf.classes_] != self.classes:
            raise AssertionError(f"{self.task.name}: classifier classes differ from the sorted labels")
        self.train_seconds = time.perf_counter() - t0
        self.trained = True
        return vec, clf

    def __call__(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> np.ndarray:
        with self._lock:
            if self._fit is None:
                self._fit = self._train()
        vec, clf = self._fit
        return clf.predict_proba(vec.transform(join_pairs(texts, pairs)))

    def callable_model(self, cache_id: str) -> CallableModel:
        """This classifier as the probe layer's model: soft-label rows, cached under ``cache_id``."""
        fn: Callable[..., np.ndarray] = self
        if self.task.is_pair:
            call: Callable[..., Any] = lambda texts, text_pairs: list(fn(texts, text_pairs))  # noqa: E731
        else:
            call = lambda texts: list(fn(texts))  # noqa: E731
        return CallableModel(
            call,
            name=self.task.name,
            labels=list(self.classes),
            cache_id=cache_id,
            batch_size=256,
            max_concurrency=2,
        )


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _probe_black_boxes(
    data: EvalData, boxes: dict[str, BlackBox], *, seed: int, cache: Path | None, log: Log
) -> tuple[dict[str, ModelResult], float]:
    """Every black box's answers on the probe texts (pair tasks on pair_probe pairs); seconds."""
    from sklearn import __version__ as sk_version

    models: dict[str, CallableModel] = {}
    for name, box in boxes.items():
        train = box.task.train
        cid = "evaluate/blackbox/" + _digest(name, sk_version, seed, train.texts, train.pairs, train.labels)
        models[name] = box.callable_model(cid)
    log(f"identification: {len(models)} black boxes; probing {len(data.probe)} texts")
    singles = [m for n, m in models.items() if not data.tasks[n].is_pair]
    doubles = [m for n, m in models.items() if data.tasks[n].is_pair]
    results: dict[str, ModelResult] = {}
    probe_s = 0.0
    for group, pairs in ((singles, None), (doubles, pair_probe(data.probe))):
        if group:
            res, secs = timed_probe(group, data.probe, pairs=pairs, cache=cache, progress=log.progress)
            probe_s += secs
            for m in group:
                results[m.name] = res[m.name]
    return results, probe_s


def model_identification(
    data: EvalData, *, seed: int, features: int, cache: Path | None, log: Log
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Identify each task's black box from its MTE among all DTEs.

    Returns ``({"metrics": {"<estimator>/<mode>": {"top1", "mrr"}}, "ranks": {...}}, cost)``."""
    boxes = {name: BlackBox(task, seed) for name, task in data.tasks.items()}
    results, probe_s = _probe_black_boxes(data, boxes, seed=seed, cache=cache, log=log)
    out: dict[str, Any] = {}
    ranks: dict[str, Any] = {}
    names = list(data.tasks)
    embed_s = 0.0
    for method in ("operator", "fisher"):
        sur = Surrogate(method=method, seed=seed, features=features)
        for mode in ("label", "text"):
            dtes = [t.embedding(sur, mode) for t in data.tasks.values()]
            t0 = time.perf_counter()
            mtes = [mte(sur, results[n], mode, n) for n in names]
            embed_s += time.perf_counter() - t0
            top1, mrr, r = identification_ranks(similarity(mtes, dtes))
            out[f"{method}/{mode}"] = {"top1": top1, "mrr": mrr}
            ranks[f"{method}/{mode}"] = dict(zip(names, r, strict=True))
            log(f"identification {method}/{mode}: top-1 {top1:.3f}, MRR {mrr:.3f}")
    usage = [results[n].usage for n in names]
    cost = {
        "mtes": len(names),
        "probe_texts_per_mte": len(data.probe),
        "probe_calls_per_mte": float(np.mean([u.calls for u in usage])),
        "probe_calls_cached_per_mte": float(np.mean([u.cached for u in usage])),
        "probe_seconds_per_mte": probe_s / len(names),
        "embed_seconds_per_mte": embed_s / (4 * len(names)),
        "train_seconds_total": sum(b.train_seconds for b in boxes.values()),
        "black_boxes_trained": sum(b.trained for b in boxes.values()),
    }
    return {"metrics": out, "ranks": ranks}, cost
