"""One request to an OpenAI-compatible endpoint: limits, retries with backoff, 429 pauses, parsing.

:meth:`EndpointClient.ask` sends one request body and returns a :class:`Reply`: the normalised
answer (:func:`taskspace.probing.prompted.read_response`) with its token usage, or the cause of the
failure. On the way it waits for the endpoint's RPM/TPM limits, retries connection errors, timeouts
and the endpoint's ``retry_statuses`` with jittered exponential backoff (longer when the server's
``Retry-After`` says so), pauses every worker of the endpoint after a 429, and marks the endpoint as
refused after a 401, 403 or 404 (every other request would fail the same way).

Whatever the server sends becomes at worst one request's error: a 200 whose body is not a usable
completion (malformed or deeply nested JSON, an HTML page, no ``choices``, logprobs of the wrong
type or impossible values) is retried like a transient error, then fails with its cause; a body
longer than the endpoint's ``max_response_bytes`` fails at once (memory stays bounded); a
``Retry-After`` is capped at ``max_retry_after`` and a retry that would end after the run's deadline
is not waited for. An answer is validated and serialised (:attr:`Reply.answer_json`, what the
cache stores) before it is returned, with every piece of a secret redacted from it, so nothing is
cached that cannot be read back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from taskspace.probing.endpoints import OpenAIEndpoint
from taskspace.probing.limits import backoff_delay, retry_after_seconds
from taskspace.probing.prompted import read_response
from taskspace.probing.redaction import Redactor

__all__ = ["FATAL_STATUSES", "EndpointClient", "Limits", "Reply"]

logger = logging.getLogger("taskspace.probing")
#: Statuses that make every further request to the endpoint pointless.
FATAL_STATUSES = {401: "unauthorized", 403: "forbidden", 404: "not found"}
#: Bytes of a non-200 body read for its error message.
ERROR_BODY_BYTES = 64 << 10
_dumps_answer = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


class Limits(Protocol):
    """What a request needs of an endpoint's limits (:class:`~taskspace.probing.limits.EndpointLimits`
    or a stand-in shared across processes)."""

    def try_acquire(self, tokens: int) -> bool: ...

    async def acquire(self, tokens: int) -> None: ...

    def pause(self, seconds: float) -> None: ...

    def reconcile(self, reserved: int, actual: int | None) -> None: ...


@dataclass
class Reply:
    """The end of one request: ``answer`` (``None`` when it failed, see ``cause``) and its usage.

    ``abandoned`` means the request was never sent: the endpoint had refused an earlier one.
    ``answer_json`` is the answer as the cache stores it (canonical JSON, secrets redacted).
    """

    answer: dict[str, Any] | None = None
    answer_json: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    status: int | None = None
    cause: str = ""
    attempts: int = 0
    rate_limited: int = 0
    latency: float = 0.0
    abandoned: bool = False

    @property
    def tokens(self) -> int:
        """Prompt + completion tokens the response reported (0 when it reported none)."""
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


def _snippet(raw: bytes, redact: Callable[[str], str], limit: int = 200) -> str:
    """The start of a body for a message: redacted first, then cut (so no cut hides a secret)."""
    text = redact(raw.decode("utf-8", errors="replace"))
    text = " ".join(text[: 4 * limit].split())
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, *, head: bool = False) -> bytes | None:
    """The body, or ``None`` when it is longer than ``cap`` bytes (read no further than that);
    with ``head``, its first ``cap`` bytes however long it is."""
    if not head and resp.content_length is not None and resp.content_length > cap:
        return None
    buf = bytearray()
    async for chunk in resp.content.iter_any():
        buf += chunk
        if len(buf) > cap:
            return bytes(buf[:cap]) if head else None
    return bytes(buf)


class EndpointClient:
    """One endpoint's requests within a run: its limits, its timeout and whether it refused us.

    Args:
        endpoint: the endpoint.
        limits: its limits (shared by every request to it).
        rng: the backoff jitter's random source.
        redact: cleans a message or an answer of secrets before it is logged or kept.
        on_rate_limited: called at each 429 (e.g. to count it on a progress bar).

    ``deadline`` (a ``time.monotonic()`` instant, set by the runner) is the run's end: a retry
    whose wait would end after it is not waited for.
    """

    def __init__(
        self,
        endpoint: OpenAIEndpoint,
        limits: Limits,
        *,
        rng: random.Random,
        redact: Redactor,
        on_rate_limited: Callable[[], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.limits = limits
        self.timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
        self.rng = rng
        self.redact = redact
        self.on_rate_limited = on_rate_limited
        self.deadline: float | None = None
        #: Why the endpoint refused (after a 401, 403 or 404); no request is sent after that.
        self.refused: str | None = None

    async def ask(
        self, session: aiohttp.ClientSession, body: bytes, estimate: int, *, name: str, index: int
    ) -> Reply:
        """Send ``body`` (``estimate`` tokens reserved against TPM), retrying as the endpoint allows;
        ``name`` and ``index`` (model and input) only label the debug log."""
        ep = self.endpoint
        reply = Reply()
        t0 = time.perf_counter()
        attempt = 0
        try:
            while True:
                if not self.limits.try_acquire(estimate):
                    await self.limits.acquire(estimate)
                if self.refused is not None:
                    reply.abandoned = True
                    return reply
                reply.attempts += 1
                retry_after, retryable = await self._attempt(session, body, reply)
                if reply.answer is not None:
                    break
                if reply.status is not None and reply.status != 200:
                    retryable = self._judge(reply, retry_after, attempt)
                if not retryable or attempt >= ep.max_retries:
                    if attempt > 0 and retryable:
                        reply.cause = (
                            f"gave up after {reply.attempts} attempts ({attempt} retries): {reply.cause}"
                        )
                    break
                delay = backoff_delay(attempt, ep.backoff, ep.backoff_max, self.rng)
                if retry_after is not None:
                    delay = max(delay, retry_after)
                if self.deadline is not None and time.monotonic() + delay > self.deadline:
                    reply.cause = (
                        f"{reply.cause}; not retried: the wait of {delay:g} s ends after the deadline"
                    )
                    break
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "probe: %s item %d attempt %d: %s; retrying in %.2f s",
                        name,
                        index,
                        reply.attempts,
                        self.redact(reply.cause),
                        delay,
                    )
                attempt += 1
                await asyncio.sleep(delay)
        finally:
            reply.latency = time.perf_counter() - t0
            if reply.answer is not None:
                reported = reply.prompt_tokens is not None or reply.completion_tokens is not None
                self.limits.reconcile(estimate, reply.tokens if reported else None)
        return reply

    async def _attempt(
        self, session: aiohttp.ClientSession, body: bytes, reply: Reply
    ) -> tuple[float | None, bool]:
        """One attempt; sets ``reply``'s status and answer or cause. Returns (the server's
        ``Retry-After`` in seconds, capped at ``max_retry_after``; whether the failure is worth a
        retry when its status does not decide: a connection error, a timeout, an unusable 200)."""
        ep = self.endpoint
        retry_after: float | None = None
        reply.status = None
        try:
            headers = ep._request_headers()
            async with session.post(ep.url, data=body, headers=headers, timeout=self.timeout) as resp:
                reply.status = status = resp.status
                if status != 200:
                    raw = await _read_capped(resp, min(ep.max_response_bytes, ERROR_BODY_BYTES), head=True)
                    reply.cause = f"HTTP {status}: {_snippet(raw or b'', self.redact)}"
                    if status == 429 or status >= 500:
                        retry_after = retry_after_seconds(resp.headers)
                        if retry_after is not None:
                            retry_after = min(retry_after, ep.max_retry_after)
                    return retry_after, False
                raw = await _read_capped(resp, ep.max_response_bytes)
                if raw is None:
                    reply.cause = (
                        f"HTTP 200 with a body over max_response_bytes={ep.max_response_bytes} "
                        "(not read further)"
                    )
                    return None, False
                return None, not self._read_completion(reply, raw, resp.content_type)
        except (asyncio.TimeoutError, TimeoutError):
            reply.cause = f"timeout after {ep.timeout:g} s"
            return retry_after, True
        except (aiohttp.ClientError, OSError) as e:
            reply.cause = f"connection error: {type(e).__name__}: {e}"
            return retry_after, True

    def _read_completion(self, reply: Reply, raw: bytes, content_type: str) -> bool:
        """Read a 200's body into ``reply``: the answer (validated, redacted, serialised) and its
        usage, or why it is not a completion. Returns whether it was one."""
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as e:
            if isinstance(e, RecursionError):
                what = "JSON nested too deeply"
            elif "json" in content_type:
                what = "malformed JSON"
            else:
                what = f"unexpected content type {content_type}"
            reply.cause = f"HTTP 200 with {what}: {_snippet(raw, self.redact)}"
            return False
        try:
            answer, prompt_tokens, completion_tokens = read_response(data)
            answer_json = _dumps_answer(answer)
            if self.redact.in_json(answer_json):
                answer = self.redact.value(answer)
                answer_json = _dumps_answer(answer)
        except Exception as e:  # whatever the body holds, it is this request's error
            reply.cause = (
                f"HTTP 200 but {type(e).__name__ + ': ' if not isinstance(e, ValueError) else ''}{e}"
            )
            return False
        reply.answer, reply.answer_json = answer, answer_json
        reply.prompt_tokens, reply.completion_tokens = prompt_tokens, completion_tokens
        return True

    def _judge(self, reply: Reply, retry_after: float | None, attempt: int) -> bool:
        """Act on a non-200 status; return whether it is worth a retry."""
        ep = self.endpoint
        status = reply.status
        if status == 429:
            reply.rate_limited += 1
            self.limits.pause(
                retry_after
                if retry_after is not None
                else backoff_delay(attempt, ep.backoff, ep.backoff_max, self.rng)
            )
            if self.on_rate_limited is not None:
                self.on_rate_limited()
            return ep.retry_on_429
        if status in FATAL_STATUSES:
            if self.refused is None:
                hint = f"; check {ep.api_key_env}" if status in (401, 403) and ep.api_key_env else ""
                self.refused = self.redact(
                    f"endpoint {ep.base_url} answered HTTP {status} ({FATAL_STATUSES[status]}) "
                    f"for model {ep.model!r}{hint}"
                )
                logger.error("probe: %s; the endpoint's remaining requests are skipped", self.refused)
            return False
        return status in ep.retry_statuses
