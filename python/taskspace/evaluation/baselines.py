"""Probability-based prompt-selection baselines: MI, GE, LE, MDL and ZPS.

These are the label-free prompt-selection scores FUTE compares against. Each one looks only at the
soft labels that every candidate prompt gives on the target task's unlabelled inputs and scores
the prompt; a higher score means the prompt is predicted to be better. Notation: for prompt i,
``P_i`` is the ``(n, C)`` matrix of label distributions ``p_i(y | x)`` on the n inputs, ``H`` is
the Shannon entropy in nats (with ``0 log 0 = 0``), and ``onehot(p)`` is the one-hot row of
``argmax p`` (ties go to the first label).

Example:
    >>> import numpy as np
    >>> from taskspace.evaluation.baselines import score_prompts
    >>> sharp = np.array([[0.9, 0.1], [0.1, 0.9]])     # confident and balanced
    >>> flat = np.array([[0.5, 0.5], [0.5, 0.5]])      # says nothing
    >>> s = score_prompts([sharp, flat])
    >>> sorted(s)
    ['GE', 'LE', 'MDL', 'MI', 'ZPS']
    >>> bool(s["MI"][0] > s["MI"][1]), bool(s["MDL"][0] > s["MDL"][1])
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from taskspace._checks import SOFT_LABEL_TOLERANCE
from taskspace.errors import InvalidInputError

__all__ = ["BASELINES", "score_prompts"]

#: The baselines :func:`score_prompts` computes, in report order.
BASELINES: tuple[str, ...] = ("MI", "GE", "LE", "MDL", "ZPS")


def _entropy(p: np.ndarray) -> np.ndarray:
    """Entropy (nats) of each row of ``p`` (last axis); ``0 log 0 = 0``."""
    logp = np.log(np.where(p > 0, p, 1.0))
    return 0.0 - (p * logp).sum(axis=-1)  # 0.0 - x: never -0.0


def _checked(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack prompts' soft labels into a float64 ``(prompts, n, C)`` array, or raise a clear error."""
    if isinstance(probs, np.ndarray) and probs.ndim == 3:
        probs = list(probs)
    if isinstance(probs, (str, bytes)) or not isinstance(probs, Sequence):
        raise TypeError(f"probs must be a sequence of (n, C) arrays, got {type(probs).__name__}")
    if len(probs) == 0:
        raise InvalidInputError("probs is empty: need at least one prompt")
    mats: list[np.ndarray] = []
    for i, p in enumerate(probs):
        try:
            a = np.asarray(p, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError(f"probs[{i}] is not a numeric array: {e}") from None
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 2:
            raise InvalidInputError(f"probs[{i}] must be (n >= 1, C >= 2), got shape {a.shape}")
        if a.shape != np.shape(mats[0] if mats else a):
            raise InvalidInputError(
                f"probs[{i}] has shape {a.shape} but probs[0] has {mats[0].shape}: every prompt must "
                "answer the same inputs with the same label columns"
            )
        if not np.isfinite(a).all():
            raise InvalidInputError(f"probs[{i}] has NaN or infinite values")
        if (a < 0).any():
            raise InvalidInputError(f"probs[{i}] has negative values")
        sums = a.sum(axis=1)
        bad = np.flatnonzero(np.abs(sums - 1.0) > SOFT_LABEL_TOLERANCE)
        if bad.size:
            raise InvalidInputError(
                f"probs[{i}] row {int(bad[0])} sums to {sums[bad[0]]:.6g}, not 1 (±{SOFT_LABEL_TOLERANCE})"
            )
        mats.append(a / sums[:, None])
    return np.stack(mats)


def _two_means_keep(x: np.ndarray) -> np.ndarray:
    """Boolean mask of the upper cluster of a deterministic 1-D 2-means (Lloyd's algorithm started at
    the minimum and the maximum); everything is kept when all values are equal."""
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.ones(x.shape, dtype=bool)
    upper = x >= (lo + hi) / 2
    for _ in range(100):
        c_lo, c_hi = x[~upper].mean(), x[upper].mean()
        new = x >= (c_lo + c_hi) / 2
        if (new == upper).all():
            break
        upper = new
    return upper


def zps_scores(p: np.ndarray) -> np.ndarray:
    """ZPS (Liao et al. 2022) on a checked ``(prompts, n, C)`` array: see :func:`score_prompts`."""
    top2 = np.sort(p, axis=2)[:, :, -2:]
    confidence = (top2[:, :, 1] - top2[:, :, 0]).sum(axis=1)  # (k,) summed top-1 - top-2 margin
    keep = _two_means_keep(confidence)
    ensemble = np.log(np.maximum(p[keep], 1e-12)).mean(axis=0)  # (n, C) log-probability mean
    pseudo = ensemble.argmax(axis=1)
    agreement = (p.argmax(axis=2) == pseudo[None, :]).mean(axis=1)
    return np.where(keep, agreement, agreement - 1.0)


def score_prompts(probs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Score candidate prompts from their soft labels alone; higher = predicted better.

    Args:
        probs: ``probs[i]`` is the ``(n, C)`` matrix of prompt i's label distributions on the target
            task's unlabelled inputs. Every prompt must answer the same n inputs with the same C
            label columns in the same order; rows must be finite, non-negative and sum to 1 (±1e-3;
            they are renormalised).

    Returns:
        ``{"MI", "GE", "LE", "MDL", "ZPS"}`` -> float64 array of one score per prompt. Each is the
        task-level form (one prompt for the whole task) and each was checked against its paper and
        against the reference implementation of all five in Yang et al. 2024 ("Improving
        Probability-based Prompt Selection Through Unified Evaluation and Analysis", TACL;
        ``method/methods.py``, where every score is ranked highest first):

        * **MI** — mutual information between inputs and predicted labels (Sorensen et al. 2022,
          "An Information-theoretic Approach to Prompt Engineering"), I(X; Y) = H(Y) - H(Y | X):
          ``H(mean_x p_i(.|x)) - mean_x H(p_i(.|x))``. High when the prompt is confident on each
          input yet uses all labels over the set.
        * **GE** — global entropy (Lu et al. 2022, "Fantastically Ordered Prompts", GlobalE):
          ``H(mean_x onehot(p_i(.|x)))``, the entropy of the predicted-label histogram. High when
          the prompt does not collapse onto one label.
        * **LE** — local entropy (Lu et al. 2022, LocalE): ``mean_x H(p_i(.|x))``, ranked highest
          first as in that paper (an over-confident prompt is taken to be degenerate) and in the
          reference implementation. It rewards uncertainty, so where the worst prompts are the
          uncertain ones (e.g. an off-task prompt whose answers hold no label word: its soft labels
          are the probe's floor, uniform) LE prefers them by construction — that is LE, not a sign
          error; the real-LLM experiment (:mod:`taskspace.evaluation.llm`) reports how many answers
          each prompt gave, so such cases are visible.
        * **MDL** — minimum description length (Wu et al. 2023, "Self-Adaptive In-Context
          Learning"): the code length of the labels under the prompt,
          ``E_{y~p_i(.|x)}[-log p_i(y|x)] = H(p_i(.|x))``, is to be minimised; the task-level form
          (the reference implementation's ``MDL_M``) scores ``-mean_x H(p_i(.|x))``. It therefore
          ranks prompts in exactly the reverse order of LE, as the two papers' criteria are opposite.
        * **ZPS** — zero-label prompt selection (Liao et al. 2022, "Zero-Label Prompt Selection"):
          (1) *prompt filtering*: each prompt's confidence ``sum_x (top-1 - top-2 probability)``
          is split into two clusters by 1-D 2-means, and only the upper cluster is kept (all are
          kept when the confidences are equal); (2) *ensemble*: pseudo-labels are the argmax of
          the kept prompts' **log-probability mean** ``mean_i log p_i(y|x)``; (3) a prompt's score
          is its agreement with them, ``mean_x [argmax p_i(.|x) = pseudo(x)]``; a filtered-out
          prompt is not a candidate, so it scores its agreement minus 1 (below every kept one).

        ``H`` is the Shannon entropy in nats with ``0 log 0 = 0``; argmax ties go to the first label.

    Example:
        >>> import numpy as np
        >>> from taskspace.evaluation.baselines import score_prompts
        >>> a = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> b = np.array([[1.0, 0.0], [1.0, 0.0]])
        >>> s = score_prompts([a, b])
        >>> s["GE"].round(4).tolist()  # a uses both labels (log 2), b one (0)
        [0.6931, 0.0]
        >>> s["MI"].round(4).tolist()
        [0.6931, 0.0]
    """
    p = _checked(probs)  # (k, n, C)
    k, _, c = p.shape
    mean_h = _entropy(p).mean(axis=1)  # (k,) mean_x H(p_i(y|x))
    marginal = p.mean(axis=1)  # (k, C)
    pred = p.argmax(axis=2)  # (k, n), ties -> first label
    hist = np.stack([np.bincount(pred[i], minlength=c) for i in range(k)]) / p.shape[1]
    return {
        "MI": _entropy(marginal) - mean_h,
        "GE": _entropy(hist),
        "LE": mean_h.copy(),
        "MDL": -mean_h,
        "ZPS": zps_scores(p),
    }
