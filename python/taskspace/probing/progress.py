"""The progress bar of a probe run (tqdm on stderr): done / total, ok, errors, 429s, tokens, cost.

It is shown only when asked (``progress=True``, the default) and stderr is a terminal; otherwise
every method is a no-op. The counters are redrawn at most ten times a second.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress"]


class Progress:
    __slots__ = ("_bar", "_last", "_pending", "cost", "errors", "ok", "rate_limited", "tokens")

    def __init__(self, total: int, *, enabled: bool, desc: str = "probe") -> None:
        self.ok = self.errors = self.rate_limited = self.tokens = 0
        self.cost = 0.0
        self._pending = 0
        self._last = 0.0
        self._bar: Any = None
        if enabled and total > 0 and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, desc=desc, unit="req", dynamic_ncols=True, leave=True, file=sys.stderr
            )

    @property
    def shown(self) -> bool:
        return self._bar is not None

    def advance(
        self,
        n: int,
        *,
        ok: int = 0,
        errors: int = 0,
        rate_limited: int = 0,
        tokens: int = 0,
        cost: float = 0.0,
    ) -> None:
        self.ok += ok
        self.errors += errors
        self.rate_limited += rate_limited
        self.tokens += tokens
        self.cost += cost
        if self._bar is None:
            return
        self._pending += n
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._flush(now)

    def _flush(self, now: float) -> None:
        self._last = now
        self._bar.set_postfix_str(
            f"ok={self.ok} err={self.errors} 429={self.rate_limited} tok={self.tokens} cost={self.cost:.4f}",
            refresh=False,
        )
        self._bar.update(self._pending)
        self._pending = 0

    def close(self) -> None:
        if self._bar is not None:
            self._flush(time.monotonic())
            self._bar.close()
            self._bar = None
