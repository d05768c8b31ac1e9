"""Progress lines of the evaluation suite on stderr, stamped with the seconds since the run began."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

__all__ = ["Log"]


@dataclass
class Log:
    """Call with a message to print ``[   12.3s] message`` to stderr; silent unless ``progress``."""

    progress: bool
    t0: float = field(default_factory=time.perf_counter)

    def __call__(self, msg: str) -> None:
        if self.progress:
            print(f"[{time.perf_counter() - self.t0:7.1f}s] {msg}", file=sys.stderr, flush=True)
