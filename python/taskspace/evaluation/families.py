"""Task similarity: do tasks of one family (``families.json``) lie closer than tasks of different ones?

AUC of same-family vs different-family task pairs, scored by the cosine of the DTEs (``taskspace``
in label mode, ``taskspace_text`` in text mode), by the cosine of mean TF-IDF input vectors
(``textemb``) and by random scores (the mean over seeded draws).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from taskspace.embedding.surrogate import Surrogate
from taskspace.errors import InvalidInputError
from taskspace.evaluation.data import EvalData, join_pairs
from taskspace.evaluation.metrics import RANDOM_DRAWS, auc
from taskspace.evaluation.progress import Log
from taskspace.search.cosine import similarity

__all__ = ["task_similarity"]


def _textemb_scores(data: EvalData) -> np.ndarray:
    """All-pairs cosine of each task's mean TF-IDF vector of its train inputs."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    tasks = list(data.tasks.values())
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2)
    vec.fit([x for t in tasks for x in join_pairs(t.train.texts, t.train.pairs)])
    means = np.stack(
        [
            np.asarray(vec.transform(join_pairs(t.train.texts, t.train.pairs)).mean(axis=0)).ravel()
            for t in tasks
        ]
    )
    return similarity(means.astype(np.float32))


def task_similarity(data: EvalData, *, seed: int, features: int, log: Log) -> dict[str, Any]:
    """``{"metrics": {method: {"auc"}}, "pairs": n, "positive_pairs": same-family pairs}``.

    Raises:
        InvalidInputError: every task pair is same-family, or none is.
    """
    names = list(data.tasks)
    iu = np.triu_indices(len(names), 1)
    positive = np.asarray(
        [data.families[names[i]] == data.families[names[j]] for i, j in zip(*iu, strict=True)]
    )
    if positive.all() or not positive.any():
        raise InvalidInputError("task similarity needs both same-family and different-family task pairs")
    out: dict[str, Any] = {}
    for label, mode in (("taskspace", "label"), ("taskspace_text", "text")):
        sur = Surrogate(seed=seed, features=features)
        dtes = [t.embedding(sur, mode) for t in data.tasks.values()]
        out[label] = {"auc": auc(similarity(dtes)[iu], positive)}
    out["textemb"] = {"auc": auc(_textemb_scores(data)[iu], positive)}
    rng = np.random.default_rng([seed, 11])
    out["random"] = {
        "auc": float(np.mean([auc(rng.random(positive.size), positive) for _ in range(RANDOM_DRAWS)]))
    }
    log("task similarity AUC: " + ", ".join(f"{k} {v['auc']:.3f}" for k, v in out.items()))
    return {"metrics": out, "pairs": int(positive.size), "positive_pairs": int(positive.sum())}
