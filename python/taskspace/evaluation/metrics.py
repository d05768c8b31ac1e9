"""How well scores rank candidates: selection metrics, NDCG, Spearman's rho, ROC AUC, MRR.

The one copy of average ranks and Spearman's rho in the package (the HTML report uses it too).
Where a rank correlation is undefined — fewer than two values, or one side constant — :func:`spearman`
returns ``None``: there is no ranking information, and a number would pretend there is.
:func:`selection_metrics` reports that case as ``0.0`` so that tables can average over tasks.

Example:
    >>> from taskspace.evaluation.metrics import selection_metrics, spearman
    >>> selection_metrics([0.6, 0.8, 0.7], [2.0, 3.0, 1.0])["selected_over_oracle"]
    1.0
    >>> spearman([1, 2, 3], [10, 20, 30]), spearman([1, 2, 3], [3, 2, 1]), spearman([1, 1], [1, 2])
    (1.0, -1.0, None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from taskspace.errors import InvalidInputError

__all__ = [
    "METRIC_KEYS",
    "RANDOM_DRAWS",
    "auc",
    "average_ranks",
    "identification_ranks",
    "random_selection_metrics",
    "selection_metrics",
    "spearman",
]

#: The keys of :func:`selection_metrics`, in report order.
METRIC_KEYS: tuple[str, ...] = ("selected_over_oracle", "spearman", "ndcg3")
#: Seeded random rankings that :func:`random_selection_metrics` averages over.
RANDOM_DRAWS = 1000


def average_ranks(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` (float64), tied values sharing the mean of their ranks.

    Example:
        >>> from taskspace.evaluation.metrics import average_ranks
        >>> average_ranks([0.3, 0.1, 0.3]).tolist()
        [2.5, 1.0, 2.5]
    """
    a = np.asarray(values, dtype=np.float64)
    order = np.argsort(a, kind="stable")
    ranks = np.empty(a.size)
    ranks[order] = np.arange(1, a.size + 1)
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse.ravel(), weights=ranks)
    return (sums / counts)[inverse.ravel()]


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float | None:
    """Spearman's rank correlation (Pearson correlation of average ranks, so ties are handled);
    ``None`` when undefined (fewer than two values, or one side constant).

    Raises:
        ValueError: ``a`` and ``b`` differ in length.

    Example:
        >>> from taskspace.evaluation.metrics import spearman
        >>> spearman([1, 2, 2, 3], [1, 2, 2, 3]), spearman([1.0], [2.0]), spearman([1, 1, 1], [1, 2, 3])
        (1.0, None, None)
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) != len(y):
        raise ValueError(f"spearman needs two sequences of one length, got {len(x)} and {len(y)}")
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(average_ranks(x), average_ranks(y))[0, 1])


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


def _ndcg3(acc: np.ndarray, order: np.ndarray) -> float:
    """NDCG@3 of ``order`` with gain ``acc - min(acc)``; 1.0 when every gain is 0."""
    gain = acc - acc.min()
    k = min(3, acc.size)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = float(np.sort(gain)[::-1][:k] @ discount)
    return float(gain[order[:k]] @ discount) / ideal if ideal > 0 else 1.0


def selection_metrics(
    true_accuracy: Sequence[float] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """How well ``scores`` pick and rank candidates whose real quality is ``true_accuracy``.

    Args:
        true_accuracy: each candidate's accuracy (ground truth), finite, at least one > 0.
        scores: each candidate's predicted score (higher = predicted better), finite, same length.

    Returns:
        ``{"selected_over_oracle", "spearman", "ndcg3"}``:

        * ``selected_over_oracle`` — accuracy of the top-scored candidate divided by the best
          accuracy (1.0 = the oracle's pick). **Ties in scores go to the candidate listed first**
          (a stable sort on ``-score``), here and in the ranking used by ``ndcg3``.
        * ``spearman`` — :func:`spearman` between scores and accuracies; 0.0 where that is
          undefined (either side constant: no ranking information), so tables can average it.
        * ``ndcg3`` — NDCG@3 of the ranking by score with gain ``acc - min(acc)`` (so the floor
          every candidate shares earns nothing) and discount ``1 / log2(rank + 1)``; 1.0 when all
          accuracies are equal.

    Raises:
        InvalidInputError: lengths differ, values are not finite, or every accuracy is <= 0.

    Example:
        >>> from taskspace.evaluation.metrics import selection_metrics
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
    rho = spearman(acc, sc)
    return {
        "selected_over_oracle": float(acc[order[0]] / acc.max()),
        "spearman": 0.0 if rho is None else rho,
        "ndcg3": _ndcg3(acc, order),
    }


def random_selection_metrics(true_accuracy: Sequence[float] | np.ndarray) -> dict[str, float]:
    """A random choice in expectation: :func:`selection_metrics` averaged over :data:`RANDOM_DRAWS`
    random rankings, seeded by the number of candidates (so every run gives the same numbers)."""
    acc = np.asarray(true_accuracy)
    rng = np.random.default_rng([len(acc), 7])
    draws = [selection_metrics(acc, rng.random(len(acc))) for _ in range(RANDOM_DRAWS)]
    return {k: float(np.mean([d[k] for d in draws])) for k in METRIC_KEYS}


def auc(scores: Sequence[float] | np.ndarray, positive: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve: P(score of a random positive > that of a random negative), ties 1/2.

    Raises:
        InvalidInputError: lengths differ, scores are not finite, or one class is missing.

    Example:
        >>> from taskspace.evaluation.metrics import auc
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
    ranks = average_ranks(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def identification_ranks(sim: np.ndarray) -> tuple[float, float, list[int]]:
    """Row i's own column is i: (top-1 rate, MRR, rank of each row's own column).

    A rank counts every other column scoring at least as high (ties count against the model)."""
    own = np.diag(sim)
    ranks = [1 + int((np.delete(sim[i], i) >= own[i]).sum()) for i in range(sim.shape[0])]
    r = np.asarray(ranks, dtype=np.float64)
    return float((r == 1).mean()), float((1.0 / r).mean()), ranks
