"""A configurable OpenAI-compatible test server on 127.0.0.1 for the probe tests (a real aiohttp server).

``async with FakeOpenAI(...) as srv:`` serves ``srv.base_url`` (``http://127.0.0.1:PORT/v1``) from the
running event loop, and records every request it receives (``srv.hits``: time, input text,
Authorization header) and the most requests it ever had in flight (``srv.max_inflight``).

How it answers (``mode``, per request; ``fail_first`` requests use ``fail_mode`` first, and an input
containing ``[[MODE]]`` always gets that mode):

* ``ok`` — a completion whose text is ``answer(text)`` (default: ``positive`` when the text holds
  "good", else ``negative``), with ``usage``; with ``logprobs(text)`` set, also logprobs in the
  request's format (chat or completions): a leading whitespace token, then the answer token with
  the given top candidates;
* ``429`` — status 429 with ``Retry-After`` (seconds) or ``retry-after-ms`` headers when set;
* ``500``, ``503``, ``401`` — that status with an OpenAI-style JSON error;
* ``reset`` — the connection is closed without an answer;
* ``malformed`` (invalid JSON, JSON content type), ``empty`` (``choices: []``), ``html`` (200 with
  an HTML page);
* ``delay`` seconds of sleep before any answer (a slow server), ``ok_delay`` before normal answers only.

``on_hit(n)`` is called as the ``n``-th request arrives (e.g. to look at the client's cache then).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class Hit:
    t: float
    text: str
    auth: str | None
    mode: str


def default_answer(text: str) -> str:
    return "positive" if "good" in text else "negative"


class FakeOpenAI:
    def __init__(
        self,
        *,
        mode: str = "ok",
        delay: float = 0.0,
        ok_delay: float = 0.0,
        fail_first: int = 0,
        fail_mode: str = "500",
        retry_after: str | None = None,
        retry_after_ms: str | None = None,
        answer: Callable[[str], str] = default_answer,
        logprobs: Callable[[str], list[tuple[str, float]]] | None = None,
        on_hit: Callable[[int], None] | None = None,
    ) -> None:
        self.mode = mode
        self.delay = delay
        self.ok_delay = ok_delay
        self.fail_first = fail_first
        self.fail_mode = fail_mode
        self.retry_after = retry_after
        self.retry_after_ms = retry_after_ms
        self.answer = answer
        self.logprobs = logprobs
        self.on_hit = on_hit
        self.hits: list[Hit] = []
        self.inflight = 0
        self.max_inflight = 0
        self.base_url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        app.router.add_post("/v1/completions", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def texts(self) -> list[str]:
        return [h.text for h in self.hits]

    def _mode(self, n: int, text: str) -> str:
        if "[[" in text:
            return text.split("[[", 1)[1].split("]]", 1)[0]
        if n < self.fail_first:
            return self.fail_mode
        return self.mode

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        chat = "messages" in body
        text = body["messages"][-1]["content"] if chat else body["prompt"]
        n = len(self.hits)
        mode = self._mode(n, text)
        self.hits.append(Hit(time.monotonic(), text, request.headers.get("Authorization"), mode))
        if self.on_hit is not None:
            self.on_hit(len(self.hits))
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.ok_delay and mode == "ok":
                await asyncio.sleep(self.ok_delay)
            return self._respond(mode, text, body, chat, request)
        finally:
            self.inflight -= 1

    def _respond(
        self, mode: str, text: str, body: dict[str, Any], chat: bool, request: web.Request
    ) -> web.StreamResponse:
        if mode == "429":
            headers = {}
            if self.retry_after is not None:
                headers["Retry-After"] = self.retry_after
            if self.retry_after_ms is not None:
                headers["retry-after-ms"] = self.retry_after_ms
            return web.json_response(
                {"error": {"message": "rate limited", "type": "rate_limit"}}, status=429, headers=headers
            )
        if mode in ("500", "503", "401", "400"):
            return web.json_response(
                {"error": {"message": f"mode {mode}", "type": "server"}}, status=int(mode)
            )
        if mode == "reset":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if mode == "malformed":
            return web.Response(body=b'{"choices": [{"message": ', content_type="application/json")
        if mode == "empty":
            return web.json_response({"id": "x", "choices": []})
        if mode == "html":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        answer = self.answer(text)
        usage = {
            "prompt_tokens": len(text.split()) + 3,
            "completion_tokens": 1,
            "total_tokens": len(text.split()) + 4,
        }
        lp = self.logprobs(text) if self.logprobs is not None and body.get("logprobs") else None
        if chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "finish_reason": "stop",
            }
            if lp is not None:
                first = {"token": " ", "logprob": -0.01, "top_logprobs": [{"token": " ", "logprob": -0.01}]}
                tok = {
                    "token": lp[0][0],
                    "logprob": lp[0][1],
                    "top_logprobs": [{"token": t, "logprob": v} for t, v in lp],
                }
                choice["logprobs"] = {"content": [first, tok]}
            return web.json_response(
                {"id": "c", "object": "chat.completion", "choices": [choice], "usage": usage}
            )
        choice = {"index": 0, "text": answer, "finish_reason": "stop"}
        if lp is not None:
            choice["logprobs"] = {
                "tokens": [" ", lp[0][0]],
                "token_logprobs": [-0.01, lp[0][1]],
                "top_logprobs": [{" ": -0.01}, dict(lp)],
            }
        return web.json_response(
            {"id": "c", "object": "text_completion", "choices": [choice], "usage": usage}
        )
