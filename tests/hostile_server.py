"""A hostile OpenAI-compatible server on 127.0.0.1 for the probe tests: one misbehaviour per route.

``async with HostileOpenAI() as srv:`` serves every route of :data:`ROUTES` at ``srv.url(route)``
(``http://127.0.0.1:PORT/ROUTE/v1``, chat and completions), from a real aiohttp server in the running
event loop; ``slow_headers`` is served by a raw TCP server of its own (aiohttp sends a response's
headers at once). ``srv.hits`` counts the requests per route. Every endless behaviour stops when the
client goes away or the server is closed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from aiohttp import web

#: route -> what it does (the tests assert what each must become).
ROUTES = {
    "ok": "a correct completion (the control)",
    "html": "200 with an HTML page",
    "missing": "200 whose choice has neither message nor text",
    "no_choices": "200 with a JSON object without choices",
    "not_object": "200 with the JSON number 5",
    "malformed": "200 with truncated JSON",
    "deep": "200 with JSON nested 100,000 deep",
    "logprob_big": "a logprob of 1000",
    "logprob_overflow": "a logprob of 1e400 (infinite once parsed)",
    "logprob_neg_inf": "a logprob of -Infinity (probability 0: a valid answer)",
    "logprob_nan": "a logprob of NaN beside a valid one",
    "finish_nan": "finish_reason NaN",
    "usage_absurd": "usage.completion_tokens 10**30 and prompt_tokens -5",
    "top_int": "top_logprobs: 5",
    "content_int": "message content 5",
    "logprobs_str": "logprobs: 'x'",
    "choices_str": "choices: 'abc'",
    "huge": "a 64 MiB body (Content-Length announced)",
    "endless": "a chunked body that never ends",
    "500_endless": "500 with a chunked body that never ends",
    "trickle": "headers, then one body byte every 0.1 s, forever",
    "silent": "never answers",
    "slow_headers": "the status line and headers one byte every 0.1 s, forever",
    "reset": "closes the connection without an answer",
    "401_echo": "401 whose body echoes pieces of the Authorization header (17 to 30 characters)",
    "400": "400 with a JSON error",
    "500_echo": "500 whose body echoes the Authorization header",
    "429_inf": "429 with Retry-After: inf",
    "429_1e8": "429 with Retry-After: 1e8",
    "429_negative": "429 with Retry-After: -5",
    "429_garbage": "429 with Retry-After: soon, and retry-after-ms: NaN",
    "echo": "a completion whose text echoes the Authorization header",
    "echo_escaped": "the same, every character \\u-escaped in the JSON",
    "echo_tokens": "a completion whose logprob tokens echo the header",
    "echo_partial": "a completion whose text echoes the key without its first and last characters",
}


def _completion(content: Any, *, chat: bool, logprobs: Any = None, **extra: Any) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    if chat:
        choice["message"] = {"role": "assistant", "content": content}
    else:
        choice["text"] = content
    if logprobs is not None:
        choice["logprobs"] = logprobs
    body = {"id": "x", "choices": [choice], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
    body.update(extra)
    return body


def _lp(token: str, value: Any, others: list[tuple[str, Any]] | None = None) -> dict[str, Any]:
    top = [{"token": token, "logprob": value}, *({"token": t, "logprob": v} for t, v in others or [])]
    return {"content": [{"token": token, "logprob": value, "top_logprobs": top}]}


def _raw(body: str) -> web.Response:
    return web.Response(body=body.encode(), content_type="application/json")


class HostileOpenAI:
    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None
        self._raw: asyncio.Server | None = None
        self._port = 0
        self._raw_port = 0
        self._stop = asyncio.Event()

    def url(self, route: str) -> str:
        port = self._raw_port if route == "slow_headers" else self._port
        return f"http://127.0.0.1:{port}/{route}/v1"

    async def __aenter__(self) -> HostileOpenAI:
        app = web.Application()
        app.router.add_post("/{route}/v1/chat/completions", self._handle)
        app.router.add_post("/{route}/v1/completions", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self._raw = await asyncio.start_server(self._slow_headers, "127.0.0.1", 0)
        self._raw_port = self._raw.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._runner is not None and self._raw is not None
        self._raw.close()
        await self._runner.cleanup()

    async def _slow_headers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.hits["slow_headers"] += 1
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " + b"a" * 10_000
        try:
            for k in range(len(head)):
                if self._stop.is_set():
                    break
                writer.write(head[k : k + 1])
                await writer.drain()
                await asyncio.sleep(0.1)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = request.match_info["route"]
        self.hits[route] += 1
        body = await request.json()
        chat = "messages" in body
        auth = request.headers.get("Authorization", "")
        if route in ("huge", "endless", "500_endless", "trickle", "silent", "reset"):
            return await self._stream(route, request)
        return self._answer(route, chat, auth)

    async def _stream(self, route: str, request: web.Request) -> web.StreamResponse:
        if route == "silent":
            await self._stop.wait()
            return web.Response(status=503)
        if route == "reset":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        resp = web.StreamResponse(
            status=500 if route == "500_endless" else 200, headers={"Content-Type": "application/json"}
        )
        total = 64 << 20
        if route == "huge":
            resp.content_length = total
        await resp.prepare(request)
        chunk = b'{"choices": [{"message": {"content": "' if route == "trickle" else b" " * 65536
        sent = 0
        try:
            while not self._stop.is_set() and (route != "huge" or sent < total):
                await resp.write(chunk[:1] if route == "trickle" else chunk)
                sent += len(chunk)
                await asyncio.sleep(0.1 if route == "trickle" else 0)
        except (ConnectionError, OSError, RuntimeError):
            pass
        return resp

    def _answer(self, route: str, chat: bool, auth: str) -> web.StreamResponse:
        if route == "ok":
            return web.json_response(_completion("positive", chat=chat))
        if route == "html":
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        if route == "missing":
            return web.json_response({"id": "x", "choices": [{"index": 0}]})
        if route == "no_choices":
            return web.json_response({"id": "x", "object": "chat.completion"})
        if route == "not_object":
            return _raw("5")
        if route == "malformed":
            return _raw('{"choices": [{"message": ')
        if route == "deep":
            return _raw("[" * 100_000 + "]" * 100_000)
        if route in ("logprob_big", "logprob_overflow", "logprob_neg_inf", "logprob_nan"):
            value = {
                "logprob_big": "1000",
                "logprob_overflow": "1e400",
                "logprob_neg_inf": "-Infinity",
                "logprob_nan": "NaN",
            }[route]
            others = ', {"token": "negative", "logprob": -2.5}'
            top = f'[{{"token": "positive", "logprob": {value}}}{others}]'
            content = f'[{{"token": "positive", "logprob": {value}, "top_logprobs": {top}}}]'
            return _raw(
                '{"choices": [{"index": 0, "message": {"role": "assistant", "content": "positive"}, '
                f'"logprobs": {{"content": {content}}}, "finish_reason": "stop"}}]}}'
            )
        if route == "finish_nan":
            return _raw('{"choices": [{"message": {"content": "positive"}, "finish_reason": NaN}]}')
        if route == "usage_absurd":
            body = _completion("positive", chat=chat)
            body["usage"] = {"prompt_tokens": -5, "completion_tokens": 10**30}
            return web.json_response(body)
        if route == "top_int":
            lp = {"content": [{"token": "positive", "logprob": -0.1, "top_logprobs": 5}]}
            return web.json_response(_completion("positive", chat=chat, logprobs=lp))
        if route == "content_int":
            return web.json_response(_completion(5, chat=chat))
        if route == "logprobs_str":
            return web.json_response(_completion("positive", chat=chat, logprobs="x"))
        if route == "choices_str":
            return web.json_response({"id": "x", "choices": "abc"})
        if route == "401_echo":
            key = auth.removeprefix("Bearer ")
            msg = f"Incorrect API key provided: {key[:17]}...{key[-20:]} (or {key[3:33]})"
            return web.json_response({"error": {"message": msg}}, status=401)
        if route == "400":
            return web.json_response({"error": {"message": "bad request"}}, status=400)
        if route == "500_echo":
            return web.json_response({"error": {"message": f"upstream got {auth}"}}, status=500)
        if route.startswith("429_"):
            headers = {
                "429_inf": {"Retry-After": "inf"},
                "429_1e8": {"Retry-After": "1e8"},
                "429_negative": {"Retry-After": "-5"},
                "429_garbage": {"Retry-After": "soon", "retry-after-ms": "NaN"},
            }[route]
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers=headers)
        if route == "echo":
            return web.json_response(_completion(f"you sent {auth}", chat=chat))
        if route == "echo_escaped":
            escaped = "".join(f"\\u{ord(c):04x}" for c in f"you sent {auth}")
            return _raw(f'{{"choices": [{{"message": {{"content": "{escaped}"}}}}]}}')
        if route == "echo_tokens":
            lp = _lp(auth, -0.1, [(auth[::-1], -3.0)])
            return web.json_response(_completion(auth[7:], chat=chat, logprobs=lp))
        if route == "echo_partial":
            return web.json_response(_completion(f"you sent {auth[8:-1]}", chat=chat))
        raise AssertionError(f"unknown route {route}")
