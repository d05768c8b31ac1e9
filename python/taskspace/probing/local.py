"""Asking local models and Python callables: one batch of texts per call, outputs checked.

A local model's ``predict_proba`` gives soft label rows (columns reordered to the first call's
labels); a :class:`~taskspace.CallableModel` gives labels, soft label rows or texts. A sync function
runs in the run's thread pool, an async one is awaited; an exception, a timeout or a wrong number of
outputs fails the batch, an invalid single output fails that input.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from taskspace import _checks

if TYPE_CHECKING:
    from taskspace.probing.plan import ModelPlan

__all__ = ["ask_batch", "callable_output", "local_outputs", "takes_pairs"]

_SOFT_TOLERANCE = _checks.SOFT_LABEL_TOLERANCE


def takes_pairs(fn: Callable[..., Any]) -> bool:
    """Whether ``fn`` accepts a ``text_pairs`` keyword (or any keyword)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return "text_pairs" in sig.parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()
    )


def _learn_labels(m: ModelPlan, labels: tuple[str, ...]) -> None:
    """The first soft label row names the model's columns (and its running MTE's)."""
    m.labels = labels
    if m.tracker is not None:
        m.tracker.labels = labels


def callable_output(m: ModelPlan, o: Any) -> Any:
    """One output of a callable, checked: a label, a text or a normalised soft label row (``None``
    stays ``None``). Raises ``ValueError`` with the reason for an invalid output."""
    if o is None:
        return None
    if isinstance(o, str):
        if m.mode == "label" and m.labels is not None and o not in m.labels:
            raise ValueError(f"label {o!r} is not one of {list(m.labels)}")
        return o
    if m.mode == "text":
        raise ValueError(f"a text model must return str, got {type(o).__name__}")
    row = np.asarray(o, dtype=np.float64)
    if row.ndim != 1 or row.size < 1:
        raise ValueError(f"a soft label must be a 1-D row, got shape {row.shape}")
    if m.labels is None:
        _learn_labels(m, tuple(str(j) for j in range(row.size)))
    if row.size != len(m.labels):  # type: ignore[arg-type]
        raise ValueError(f"a soft label row has {row.size} values for {len(m.labels)} labels")  # type: ignore[arg-type]
    if not np.all(np.isfinite(row)) or np.any(row < 0) or abs(row.sum() - 1.0) > _SOFT_TOLERANCE:
        raise ValueError("a soft label row must be finite, >= 0 and sum to 1")
    return row / row.sum()


def local_outputs(m: ModelPlan, res: Any, n: int) -> list[Any]:
    """The soft label rows of a local model's ``predict_proba`` result on ``n`` texts, in the
    model's column order (``None`` for an invalid row). Raises ``ValueError`` for a malformed result."""
    try:
        labels, probs = res
    except (TypeError, ValueError):
        raise ValueError("predict_proba must return (labels, probs)") from None
    labels = tuple(str(x) for x in labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (n, len(labels)):
        raise ValueError(
            f"predict_proba returned probs of shape {probs.shape} for {n} texts and {len(labels)} labels"
        )
    if m.labels is None:
        _learn_labels(m, labels)
    elif labels != m.labels:
        if set(labels) != set(m.labels):
            raise ValueError(
                f"predict_proba's labels changed between calls: {list(labels)} vs {list(m.labels)}"
            )
        probs = probs[:, [labels.index(x) for x in m.labels]]
    sums = probs.sum(axis=1)
    bad = ~np.isfinite(probs).all(axis=1) | (probs < 0).any(axis=1) | (np.abs(sums - 1.0) > _SOFT_TOLERANCE)
    return [None if bad[r] else probs[r] / sums[r] for r in range(n)]


def _callable_outputs(m: ModelPlan, res: Any, n: int) -> list[Any]:
    if isinstance(res, np.ndarray) and res.ndim == 2:
        res = list(res)
    if isinstance(res, (str, bytes)) or not isinstance(res, Sequence):
        raise ValueError(f"returned a {type(res).__name__}, not a list of outputs")
    if len(res) != n:
        raise ValueError(f"returned {len(res)} outputs for {n} texts")
    return [callable_output(m, o) for o in res]


async def ask_batch(
    m: ModelPlan,
    texts: list[str],
    pairs: list[str] | None,
    *,
    executor: Callable[[], ThreadPoolExecutor],
    redact: Callable[[str], str],
) -> tuple[list[Any] | None, str]:
    """``(outputs, "")`` of one call of a local model or callable on ``texts``, or ``(None, cause)``
    when the call failed (``redact`` cleans an exception's message). A sync call runs in the pool
    ``executor()`` returns."""
    spec = m.spec
    try:
        if m.local:
            fn = spec.predict_proba
            call = (lambda: fn(texts)) if pairs is None else (lambda: fn(texts, text_pairs=pairs))
            timeout, is_async = None, False
        else:
            fn = spec.fn
            call = (lambda: fn(texts)) if pairs is None else (lambda: fn(texts, pairs))
            timeout, is_async = spec.timeout, spec.is_async
        if is_async:
            res = await asyncio.wait_for(call(), timeout)
        else:
            fut = asyncio.get_running_loop().run_in_executor(executor(), call)
            res = await asyncio.wait_for(fut, timeout)
        if m.local:
            return local_outputs(m, res, len(texts)), ""
        return _callable_outputs(m, res, len(texts)), ""
    except asyncio.CancelledError:
        raise
    except (asyncio.TimeoutError, TimeoutError):
        return None, f"timeout after {spec.timeout:g} s"
    except Exception as e:
        return None, redact(f"{type(e).__name__}: {e}")
