"""Per-endpoint rate limits of one run: requests and tokens per minute, the shared 429 pause, backoff.

All clocks are the event loop's monotonic clock. Nothing here creates tasks: a waiting worker sleeps
exactly as long as its limit requires, so a run holds as many sleeping coroutines as it has workers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

__all__ = ["EndpointLimits", "TokenBucket", "backoff_delay", "retry_after_seconds"]


class TokenBucket:
    """Holds at most ``capacity`` tokens and refills at ``rate`` tokens per second.

    ``acquire(n)`` waits until the bucket holds ``min(n, capacity)`` tokens, then takes ``n`` — the
    bucket may go into debt for a request larger than it can hold, which later requests repay.
    ``give_back(n)`` returns tokens (negative ``n`` takes more), e.g. when a reservation was wrong;
    waiters of a bucket that gets tokens back (``poll`` set) look again every ``poll`` seconds
    instead of sleeping until the refill alone would let them go.
    """

    __slots__ = ("_stamp", "capacity", "poll", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, *, poll: float | None = None) -> None:
        self.rate = float(rate)
        self.capacity = float(capacity)
        self.tokens = float(capacity)
        self.poll = poll
        self._stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_take(self, n: float, now: float) -> bool:
        """Take ``n`` tokens now if the bucket holds ``min(n, capacity)``; never waits."""
        self.tokens = min(self.capacity, self.tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self.tokens >= min(n, self.capacity):
            self.tokens -= n
            return True
        return False

    async def acquire(self, n: float = 1.0) -> None:
        need = min(n, self.capacity)
        while True:
            now = time.monotonic()
            self._refill(now)
            if self.tokens >= need:
                self.tokens -= n
                return
            wait = (need - self.tokens) / self.rate
            await asyncio.sleep(wait if self.poll is None else min(wait, self.poll))

    def give_back(self, n: float) -> None:
        self._refill(time.monotonic())
        self.tokens = min(self.capacity, self.tokens + n)

    @classmethod
    def per_minute(cls, limit: float, *, poll: float | None = None) -> TokenBucket:
        """A bucket that lets no 60-second window hold more than ``limit`` (for ``limit`` >= 2).

        It holds one second's worth (at least 1) and refills at ``(limit - capacity) / 60`` per
        second, so a full bucket plus 60 s of refill is exactly ``limit``.
        """
        capacity = max(1.0, limit / 61.0)
        rate = max(limit - capacity, limit / 2.0) / 60.0
        return cls(rate, capacity, poll=poll)


class EndpointLimits:
    """The limits one endpoint's workers share within a run."""

    __slots__ = ("paused_until", "rpm", "tpm")

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.rpm = TokenBucket.per_minute(rpm) if rpm else None
        self.tpm = TokenBucket.per_minute(tpm, poll=0.05) if tpm else None
        self.paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request of this endpoint for ``seconds`` from now (never shortens a pause)."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def wait_pause(self) -> None:
        while True:
            left = self.paused_until - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)

    def try_acquire(self, tokens: int) -> bool:
        """:meth:`acquire` without waiting: ``False`` (and nothing taken) when it would have to wait."""
        now = time.monotonic()
        if self.paused_until > now:
            return False
        rpm, tpm = self.rpm, self.tpm
        if rpm is not None and not rpm.try_take(1.0, now):
            return False
        if tpm is not None and not tpm.try_take(float(tokens), now):
            if rpm is not None:
                rpm.tokens += 1.0
            return False
        return True

    async def acquire(self, tokens: int) -> None:
        """Wait for a pause to end and for room in the RPM and TPM budgets; reserve ``tokens``."""
        await self.wait_pause()
        if self.rpm is not None:
            await self.rpm.acquire(1.0)
        if self.tpm is not None:
            await self.tpm.acquire(float(tokens))
        await self.wait_pause()

    def reconcile(self, reserved: int, actual: int | None) -> None:
        """Correct a TPM reservation with the tokens the response reports."""
        if self.tpm is not None and actual is not None:
            self.tpm.give_back(float(reserved - actual))


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds a response asks the client to wait: ``retry-after-ms``, else ``Retry-After``
    (seconds or an HTTP date); ``None`` when absent or unreadable.

    Example:
        >>> retry_after_seconds({"retry-after-ms": "250"}), retry_after_seconds({"Retry-After": "2"})
        (0.25, 2.0)
    """
    lower = {k.lower(): v for k, v in headers.items() if k.lower() in ("retry-after", "retry-after-ms")}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
            if value >= 0:
                return value
        except ValueError:
            pass
    ra = lower.get("retry-after")
    if ra is None:
        return None
    try:
        value = float(ra)
        return value if value >= 0 else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Jittered exponential backoff before retry ``attempt`` (0-based): uniform in [d/2, d] with
    ``d = min(cap, base * 2**attempt)``."""
    d = min(cap, base * (2.0**attempt))
    return d * (0.5 + 0.5 * rng.random())
