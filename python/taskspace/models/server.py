"""An OpenAI-compatible HTTP server for local models, so the whole HTTP probe path runs offline.

Endpoints (under ``/v1``, as vLLM, llama.cpp server or Ollama serve them):

* ``GET /v1/models`` and ``GET /v1/models/{model}`` — the served model names;
* ``POST /v1/chat/completions`` — the input text is the content of the last ``user`` message
  (text parts of a list content are joined with newlines);
* ``POST /v1/completions`` — the input text is ``prompt`` (a string, or a list of strings: one
  choice per prompt);
* ``GET /health`` — ``{"status": "ok"}``.

The request's ``model`` selects the local model and the answer text is the predicted label. With
logprobs requested (chat: ``"logprobs": true``; completions: ``"logprobs": N``) the answer carries
OpenAI-shaped logprobs for its first (and only) token: every label, named by itself as its
verbalizer, with ``log p(label)`` from the model's ``predict_proba``, most probable first — all
labels whatever ``top_logprobs`` asks for, since the model has no other tokens. Chat:
``choices[0].logprobs.content[0].top_logprobs`` is a list of ``{"token", "logprob", "bytes"}``;
completions: ``choices[0].logprobs.top_logprobs[0]`` is a dict ``token -> logprob``.
``usage`` counts whitespace-separated tokens (prompt: all message contents; completion: the
answer). Sampling parameters (``temperature``, ``seed``, ...) are accepted and ignored: the models
are deterministic. ``n`` copies the choice; ``stream`` and ``echo`` are refused.

Errors are JSON in OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``: 400 for a
malformed body, 404 for an unknown model or path, 405 for a wrong method, 500 if a model fails.

Concurrent requests for one model are batched into one ``predict_proba`` call, run in a worker
thread so the event loop keeps accepting requests meanwhile; a model is never called from two
threads at once.

The server has no authentication, so it listens on the loopback interface only unless
``allow_remote=True``: anyone who can reach the port could query the models (and read back what
their prompts encode, such as demonstrations) or load the machine.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import signal
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from typing import Any

import numpy as np
from aiohttp import web

from taskspace.errors import InvalidInputError
from taskspace.models.gguf_model import GGUFModel
from taskspace.models.lm_server import (
    DEFAULT_MAX_TOKENS,
    LMBatcher,
    chat_logprobs,
    completion_logprobs,
    cut_at_stop,
)

__all__ = ["LOGPROB_FLOOR", "create_app", "is_loopback", "model_server", "serve_models"]

log = logging.getLogger(__name__)

#: Log-probabilities are reported no lower than this (JSON has no -infinity).
LOGPROB_FLOOR = -100.0
#: Most texts sent to a model in one batched ``predict_proba`` call.
MAX_BATCH = 256
#: Largest accepted request body (bytes).
MAX_BODY = 8 * 1024 * 1024
_MAX_N = 128


class _RequestError(Exception):
    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


def _error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> web.Response:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.json_response(body, status=status)


class _Batcher:
    """Collects concurrent requests for one model and answers them with one predict_proba call."""

    def __init__(self, model: Any, executor: ThreadPoolExecutor) -> None:
        self._model = model
        self._executor = executor
        self._pending: deque[tuple[list[str], asyncio.Future[tuple[list[str], np.ndarray]]]] = deque()
        self._task: asyncio.Task[None] | None = None

    async def proba(self, texts: list[str]) -> tuple[list[str], np.ndarray]:
        fut: asyncio.Future[tuple[list[str], np.ndarray]] = asyncio.get_running_loop().create_future()
        self._pending.append((texts, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch: list[tuple[list[str], asyncio.Future[tuple[list[str], np.ndarray]]]] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0][0]) <= MAX_BATCH):
                item = self._pending.popleft()
                batch.append(item)
                size += len(item[0])
            texts = [t for item_texts, _ in batch for t in item_texts]
            try:
                labels, probs = await loop.run_in_executor(self._executor, _checked_proba, self._model, texts)
            except Exception as e:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            start = 0
            for item_texts, fut in batch:
                if not fut.done():
                    fut.set_result((labels, probs[start : start + len(item_texts)]))
                start += len(item_texts)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        for _, fut in self._pending:
            fut.cancel()
        self._pending.clear()


_MODELS: web.AppKey[dict[str, Any]] = web.AppKey("models", dict)
_BATCHERS: web.AppKey[dict[str, Any]] = web.AppKey("batchers", dict)


def _checked_proba(model: Any, texts: list[str]) -> tuple[list[str], np.ndarray]:
    labels, probs = model.predict_proba(texts)
    probs = np.asarray(probs, dtype=np.float64)
    labels = [str(x) for x in labels]
    if probs.shape != (len(texts), len(labels)) or not np.isfinite(probs).all():
        raise RuntimeError(
            f"model returned probabilities of shape {probs.shape} for {len(texts)} texts and {len(labels)} labels"
        )
    return labels, probs


def _check_models(models: Any) -> dict[str, Any]:
    if not isinstance(models, Mapping):
        raise TypeError(f"models must be a mapping name -> model, got {type(models).__name__}")
    if not models:
        raise InvalidInputError("models is empty: give at least one model to serve")
    out = {}
    for name, model in models.items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"model names must be non-empty str, got {name!r}")
        if not isinstance(model, GGUFModel) and not callable(getattr(model, "predict_proba", None)):
            raise TypeError(
                f"model {name!r} is neither a GGUFModel nor has a predict_proba(texts) -> (labels, probs) method"
            )
        out[name] = model
    return out


def create_app(models: Mapping[str, Any]) -> web.Application:
    """An aiohttp application serving ``models`` (name -> model with ``predict_proba``).

    Run it with aiohttp's runners, or use :func:`model_server` / :func:`serve_models`.

    Example:
        >>> from taskspace.models import ZeroShot
        >>> from taskspace.models.server import create_app
        >>> app = create_app({"mood": ZeroShot("I feel {}.", {"happy": "glad", "sad": "low"})})
        >>> sorted(r.resource.canonical for r in app.router.routes() if r.method == "POST")
        ['/v1/chat/completions', '/v1/completions']
    """
    served = _check_models(models)
    app = web.Application(middlewares=[_json_errors], client_max_size=MAX_BODY)
    app[_MODELS] = served
    app[_BATCHERS] = {}
    app.cleanup_ctx.append(_workers)
    app.router.add_get("/health", _health)
    app.router.add_get("/v1/models", _list_models)
    app.router.add_get("/v1/models/{model:.+}", _get_model)
    app.router.add_post("/v1/chat/completions", _chat)
    app.router.add_post("/v1/completions", _completions)
    return app


async def _workers(app: web.Application) -> AsyncIterator[None]:
    models = app[_MODELS]
    executor = ThreadPoolExecutor(max_workers=min(8, len(models)), thread_name_prefix="taskspace-model")
    app[_BATCHERS].update(
        {
            name: LMBatcher(model, executor) if isinstance(model, GGUFModel) else _Batcher(model, executor)
            for name, model in models.items()
        }
    )
    try:
        yield
    finally:
        for batcher in app[_BATCHERS].values():
            await batcher.close()
        executor.shutdown(wait=True)


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except _RequestError as e:
        return _error_response(e.status, e.message, param=e.param, code=e.code)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = f"{e.reason}: {request.method} {request.path}"
        if e.status == 413:
            message = f"request body too large (limit {MAX_BODY} bytes)"
        return _error_response(e.status, message)
    except Exception:
        log.exception("model server: %s %s failed", request.method, request.path)
        return _error_response(500, "the model failed on this request; see the server log")


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _model_card(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "taskspace"}


async def _list_models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [_model_card(n) for n in request.app[_MODELS]]})


async def _get_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    _batcher(request, name)
    return web.json_response(_model_card(name))


def _batcher(request: web.Request, name: Any) -> Any:
    if not isinstance(name, str):
        raise _RequestError(400, "'model' must be a string naming a served model", param="model")
    batcher = request.app[_BATCHERS].get(name)
    if batcher is None:
        models = request.app[_MODELS]
        served = ", ".join(models)
        raise _RequestError(
            404,
            f"the model {name!r} does not exist; served models: {served}",
            param="model",
            code="model_not_found",
        )
    return batcher


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _RequestError(400, f"the request body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise _RequestError(400, f"the request body must be a JSON object, got {type(body).__name__}")
    if "model" not in body:
        raise _RequestError(400, "the request body lacks 'model'", param="model")
    if body.get("stream"):
        raise _RequestError(400, "streaming is not supported by the taskspace model server", param="stream")
    return body


def _int_param(body: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _RequestError(400, f"'{key}' must be an integer in {low}..{high}, got {value!r}", param=key)
    return value


def _common_params(body: dict[str, Any]) -> int:
    _int_param(body, "max_tokens", None, 1, 2**31)
    _int_param(body, "max_completion_tokens", None, 1, 2**31)
    n = _int_param(body, "n", 1, 1, _MAX_N)
    assert n is not None
    return n


def _tokens(text: str) -> int:
    return len(text.split())


def _ranked(labels: list[str], row: np.ndarray) -> list[tuple[str, float]]:
    with np.errstate(divide="ignore"):
        lps = np.maximum(np.log(row), LOGPROB_FLOOR)
    order = np.argsort(-lps, kind="stable")
    return [(labels[j], float(lps[j])) for j in order]


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _message_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise _RequestError(
                    400, f"messages[{index}].content may only hold text parts", param="messages"
                )
        return "\n".join(parts)
    if content is None:
        return ""
    raise _RequestError(
        400, f"messages[{index}].content must be a string or a list of text parts", param="messages"
    )


async def _chat(request: web.Request) -> web.Response:
    body = await _body(request)
    batcher = _batcher(request, body["model"])
    if isinstance(batcher, LMBatcher):
        return await _lm_chat(body, batcher)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _RequestError(400, "'messages' must be a non-empty list", param="messages")
    texts: list[str] = []
    user: str | None = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _RequestError(400, f"messages[{i}] must be an object with a 'role'", param="messages")
        text = _message_text(message.get("content"), i)
        texts.append(text)
        if message["role"] == "user":
            user = text
    if user is None:
        raise _RequestError(
            400, "'messages' has no user message (its content is the input text)", param="messages"
        )
    want_logprobs = body.get("logprobs")
    if want_logprobs is not None and not isinstance(want_logprobs, bool):
        raise _RequestError(400, f"'logprobs' must be true or false, got {want_logprobs!r}", param="logprobs")
    _int_param(body, "top_logprobs", None, 0, 20)
    n = _common_params(body)

    labels, probs = await batcher.proba([user])
    ranked = _ranked(labels, probs[0])
    answer = ranked[0][0]
    logprobs = None
    if want_logprobs:
        top = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())} for tok, lp in ranked]
        first = {
            "token": answer,
            "logprob": ranked[0][1],
            "bytes": list(answer.encode()),
            "top_logprobs": top,
        }
        logprobs = {"content": [first], "refusal": None}
    choice = {
        "message": {"role": "assistant", "content": answer, "refusal": None},
        "logprobs": logprobs,
        "finish_reason": "stop",
    }
    return web.json_response(
        {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": None,
            "choices": [{"index": i, **choice} for i in range(n)],
            "usage": _usage(sum(_tokens(t) for t in texts), n * _tokens(answer)),
        }
    )


async def _completions(request: web.Request) -> web.Response:
    body = await _body(request)
    batcher = _batcher(request, body["model"])
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        prompts = [prompt]
    elif isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        prompts = prompt
    else:
        raise _RequestError(400, "'prompt' must be a string or a non-empty list of strings", param="prompt")
    if body.get("echo"):
        raise _RequestError(400, "'echo' is not supported by the taskspace model server", param="echo")
    if isinstance(batcher, LMBatcher):
        return await _lm_completions(body, batcher, prompts)
    want_logprobs = _int_param(body, "logprobs", None, 0, 20)
    n = _common_params(body)

    labels, probs = await batcher.proba(prompts)
    choices, completion_tokens = [], 0
    for i, row in enumerate(probs):
        ranked = _ranked(labels, row)
        answer = ranked[0][0]
        logprobs = None
        if want_logprobs is not None:
            logprobs = {
                "tokens": [answer],
                "token_logprobs": [ranked[0][1]],
                "top_logprobs": [dict(ranked)],
                "text_offset": [0],
            }
        for j in range(n):
            choices.append(
                {"index": i * n + j, "text": answer, "logprobs": logprobs, "finish_reason": "stop"}
            )
            completion_tokens += _tokens(answer)
    return web.json_response(
        {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": None,
            "choices": choices,
            "usage": _usage(sum(_tokens(p) for p in prompts), completion_tokens),
        }
    )


# -- language models (GGUF): greedy completions with real token logprobs --------------------------------


def _stop(body: dict[str, Any]) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and len(stop) <= 4 and all(isinstance(x, str) for x in stop):
        return stop
    raise _RequestError(400, "'stop' must be a string or a list of at most 4 strings", param="stop")


def _lm_params(body: dict[str, Any], batcher: LMBatcher, top: int | None) -> tuple[int, int, int, list[str]]:
    """(max_tokens, top_logprobs, n, stop) of a request, checked against the model's context."""
    n = _common_params(body)
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    if max_tokens > batcher.model.n_ctx:
        raise _RequestError(
            400,
            f"max_tokens {max_tokens} exceeds the model's context ({batcher.model.n_ctx})",
            param="max_tokens",
            code="context_length_exceeded",
        )
    return int(max_tokens), top or 0, n, _stop(body)


async def _lm_answer(batcher: LMBatcher, prompt: list[int], max_tokens: int, top: int) -> Any:
    if len(prompt) + max_tokens > batcher.model.n_ctx:
        raise _RequestError(
            400,
            f"the prompt ({len(prompt)} tokens) plus max_tokens ({max_tokens}) exceeds the model's "
            f"context of {batcher.model.n_ctx} tokens",
            code="context_length_exceeded",
        )
    return await batcher.complete(prompt, max_tokens, top)


async def _lm_chat(body: dict[str, Any], batcher: LMBatcher) -> web.Response:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _RequestError(400, "'messages' must be a non-empty list", param="messages")
    turns = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise _RequestError(
                400, f"messages[{i}] must have role system, user or assistant", param="messages"
            )
        turns.append({"role": m["role"], "content": _message_text(m.get("content"), i)})
    want = body.get("logprobs")
    if want is not None and not isinstance(want, bool):
        raise _RequestError(400, f"'logprobs' must be true or false, got {want!r}", param="logprobs")
    top = _int_param(body, "top_logprobs", 0, 0, 20) if want else 0
    max_tokens, top, n, stop = _lm_params(body, batcher, top)
    try:
        prompt = batcher.model.chat_prompt(turns)
    except InvalidInputError as e:
        raise _RequestError(400, str(e), param="messages") from None
    c = await _lm_answer(batcher, prompt, max_tokens, top)
    text, tokens, finish = cut_at_stop(c, stop)
    choice = {
        "message": {"role": "assistant", "content": text, "refusal": None},
        "logprobs": chat_logprobs(tokens) if want else None,
        "finish_reason": finish,
    }
    return _lm_response("chat.completion", body, [choice] * n, len(prompt), n * len(tokens))


async def _lm_completions(body: dict[str, Any], batcher: LMBatcher, prompts: list[str]) -> web.Response:
    want = _int_param(body, "logprobs", None, 0, 20)
    max_tokens, top, n, stop = _lm_params(body, batcher, want)
    ids = [batcher.model.completion_prompt(p) for p in prompts]
    answers = await asyncio.gather(*(_lm_answer(batcher, p, max_tokens, top) for p in ids))
    choices, used = [], 0
    for i, c in enumerate(answers):
        text, tokens, finish = cut_at_stop(c, stop)
        logprobs = completion_logprobs(tokens) if want is not None else None
        choices += [
            {"index": i * n + j, "text": text, "logprobs": logprobs, "finish_reason": finish}
            for j in range(n)
        ]
        used += n * len(tokens)
    return _lm_response("text_completion", body, choices, sum(len(p) for p in ids), used)


def _lm_response(
    kind: str, body: dict[str, Any], choices: list[dict[str, Any]], prompt: int, completion: int
) -> web.Response:
    prefix = "chatcmpl" if kind == "chat.completion" else "cmpl"
    return web.json_response(
        {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": None,
            "choices": [{**c, "index": i} for i, c in enumerate(choices)]
            if kind == "chat.completion"
            else choices,
            "usage": _usage(prompt, completion),
        }
    )


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1).

    Example:
        >>> from taskspace.models.server import is_loopback
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0"), is_loopback("::1")
        (True, True, False, True)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_host(host: str, allow_remote: bool) -> None:
    if not isinstance(host, str):
        raise TypeError(f"host must be str, got {type(host).__name__}")
    if not allow_remote and not is_loopback(host):
        raise InvalidInputError(
            f"refusing to listen on {host!r}: the model server has no authentication, so anyone who can reach "
            "it could query the models and load the machine; use 127.0.0.1, or pass allow_remote=True "
            "(CLI: --allow-remote) if that is what you want"
        )


def _check_port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an integer in 0..65535 (0 = any free port), got {port!r}")
    return port


@asynccontextmanager
async def model_server(
    models: Mapping[str, Any], *, host: str = "127.0.0.1", port: int = 0, allow_remote: bool = False
) -> AsyncIterator[str]:
    """Serve ``models`` while the ``async with`` block runs; yields the base URL (``http://HOST:PORT/v1``).

    ``port=0`` picks a free port. The URL is what OpenAI-compatible clients take as ``base_url``.

    Example:
        >>> import asyncio, aiohttp
        >>> from taskspace.models import ZeroShot
        >>> from taskspace.models.server import model_server
        >>> mood = ZeroShot("I feel {}.", {"happy": "happy and glad", "sad": "sad and low"})
        >>> async def ask(text):
        ...     async with model_server({"mood": mood}) as base_url, aiohttp.ClientSession() as session:
        ...         request = {"model": "mood", "messages": [{"role": "user", "content": text}]}
        ...         async with session.post(f"{base_url}/chat/completions", json=request) as response:
        ...             return (await response.json())["choices"][0]["message"]["content"]
        >>> asyncio.run(ask("so glad to see you"))
        'happy'
    """
    _check_host(host, allow_remote)
    port = _check_port(port)
    app = create_app(models)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{bound}/v1"
    finally:
        await runner.cleanup()


def serve_models(
    models: Mapping[str, Any], host: str = "127.0.0.1", port: int = 8000, *, allow_remote: bool = False
) -> None:
    """Serve ``models`` until interrupted (Ctrl-C or SIGTERM); prints the base URL once listening.

    This blocks; use :func:`model_server` inside async code and tests.
    """
    _check_models(models)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with suppress(
            NotImplementedError, RuntimeError
        ):  # no signal handlers on Windows / off the main thread
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with model_server(models, host=host, port=port, allow_remote=allow_remote) as url:
            count = f"{len(models)} model{'s' if len(models) != 1 else ''}"
            print(f"taskspace model server: {count} ({', '.join(models)}) at {url}", flush=True)
            await stop.wait()

    with suppress(KeyboardInterrupt):
        asyncio.run(run())
