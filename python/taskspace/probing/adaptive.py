"""Adaptive probing: stop asking a model once its MTE has stopped moving.

The running MTE is kept as additive statistics (:meth:`taskspace.Surrogate.stats`, merged with
:meth:`taskspace.TaskStats.merge`): every ``check_every`` new outputs, the statistics of just those
outputs are added and the embedding is recomputed (milliseconds), and its cosine with the previous
estimate is recorded. The model has converged when, after at least ``min_texts`` outputs, the last
``window`` cosines are all ``>= 1 - eps``; the probe then stops scheduling its remaining texts
(requests already in flight still finish and count) and reports how many texts it used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taskspace.embedding.surrogate import Surrogate, TaskStats
from taskspace.errors import ProbeError

__all__ = ["Adaptive"]


@dataclass(frozen=True)
class Adaptive:
    """Settings of adaptive probing (pass ``adaptive=Adaptive(...)`` or ``adaptive=True`` to ``probe``).

    Args:
        surrogate: the surrogate of the running MTE; use the one you will embed with
            (default ``Surrogate()``).
        eps: converged when successive cosines are ``>= 1 - eps``.
        window: ... for this many successive checks.
        check_every: outputs between two checks.
        min_texts: never stop before this many outputs.

    Example:
        >>> import taskspace as ts
        >>> from taskspace.probing import Adaptive
        >>> words = "good bad fine awful film food day service very not the a".split()
        >>> texts = [" ".join(words[(i * k) % len(words)] for k in (1, 3, 7)) + f" {i}" for i in range(1000)]
        >>> rule = lambda batch: ["pos" if "good" in t or "fine" in t else "neg" for t in batch]
        >>> m = ts.CallableModel(rule, name="rule", batch_size=50, max_concurrency=1)
        >>> cfg = Adaptive(ts.Surrogate(features=32, dim=256), eps=0.01, min_texts=100)
        >>> res = ts.probe_sync([m], texts, adaptive=cfg, progress=False)
        >>> res["rule"].adaptive["converged"], res["rule"].adaptive["texts_used"]
        (True, 500)
    """

    surrogate: Surrogate | None = None
    eps: float = 2e-3
    window: int = 3
    check_every: int = 100
    min_texts: int = 300
    _sur: Surrogate = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.surrogate is not None and not isinstance(self.surrogate, Surrogate):
            raise TypeError(f"surrogate must be a Surrogate, got {type(self.surrogate).__name__}")
        if not 0 < self.eps < 1:
            raise ProbeError(f"eps must be in (0, 1), got {self.eps!r}")
        for name in ("window", "check_every", "min_texts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ProbeError(f"{name} must be an int >= 1, got {v!r}")
        object.__setattr__(self, "_sur", self.surrogate if self.surrogate is not None else Surrogate())


class Tracker:
    """The running MTE of one model during a run."""

    def __init__(
        self,
        cfg: Adaptive,
        texts: Sequence[str],
        text_pairs: Sequence[str] | None,
        mode: str,
        labels: tuple[str, ...] | None,
    ) -> None:
        self.cfg = cfg
        self.texts = texts
        self.pairs = text_pairs
        self.mode = mode
        self.labels = labels
        self.stats: TaskStats | None = None
        self.prev: np.ndarray | None = None
        self.cosines: list[float] = []
        self.n = 0
        self.converged = False
        self._idx: list[int] = []
        self._out: list[Any] = []

    def add(self, index: int, output: Any) -> None:
        """Record one output; returns nothing, sets :attr:`converged` when the MTE is stable."""
        self._idx.append(index)
        self._out.append(output)
        if len(self._idx) >= self.cfg.check_every:
            self.update()

    def _outputs(self, outs: list[Any]) -> Any:
        if self.mode == "text":
            return [o if isinstance(o, str) else self.labels[int(np.argmax(o))] for o in outs]  # type: ignore[index]
        if self.labels is not None:
            col = {label: j for j, label in enumerate(self.labels)}
            y = np.zeros((len(outs), len(self.labels)))
            for r, o in enumerate(outs):
                if isinstance(o, str):
                    y[r, col[o]] = 1.0
                else:
                    y[r] = o
            return y
        return outs

    def update(self) -> None:
        if not self._idx:
            return
        idx, outs = self._idx, self._out
        self._idx, self._out = [], []
        sur = self.cfg._sur
        texts = [self.texts[i] for i in idx]
        pairs = None if self.pairs is None else [self.pairs[i] for i in idx]
        s = sur.stats(texts, self._outputs(outs), text_pairs=pairs, mode=self.mode)  # type: ignore[arg-type]
        self.stats = s if self.stats is None else self.stats.merge(s)
        self.n += len(idx)
        v = sur.embed(self.stats, kind="model").vector.astype(np.float64)
        if self.prev is not None:
            denom = float(np.linalg.norm(v) * np.linalg.norm(self.prev))
            self.cosines.append(float(v @ self.prev) / denom if denom > 0 else 0.0)
        self.prev = v
        w = self.cfg.window
        if (
            self.n >= self.cfg.min_texts
            and len(self.cosines) >= w
            and all(c >= 1.0 - self.cfg.eps for c in self.cosines[-w:])
        ):
            self.converged = True

    def report(self, used: int) -> dict[str, Any]:
        return {
            "converged": self.converged,
            "texts_used": used,
            "cosines": [round(c, 6) for c in self.cosines],
        }
