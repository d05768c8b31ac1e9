"""The taskspace service: a :class:`~taskspace.space.task_space.TaskSpace` file served over HTTP (aiohttp).

Endpoints (JSON in and out; the full reference is ``docs/serve.md``):

* ``POST /v1/embed``: pairs or texts with outputs -> a task embedding (vector + fingerprint).
* ``POST /v1/search``: a stored name, a vector or an embedding -> the nearest tasks (``kind`` filter).
* ``POST /v1/select``: a dataset (stored name, embedding, or pairs) -> candidate models ranked.
* ``GET /v1/tasks``: the stored names and kinds (paged). ``POST /v1/tasks`` adds an embedding and
  ``DELETE /v1/tasks/{name}`` removes one, unless the service is read-only.
* ``POST /v1/reload``: re-open the space file (also on SIGHUP), without dropping requests.
* ``GET /healthz`` (never needs a token) and ``GET /metrics`` (Prometheus text format).

Answers are the library's: search calls :meth:`TaskSpace.nearest`, select :meth:`TaskSpace.select`,
embed :meth:`Surrogate.stats` + :meth:`Surrogate.embed` of the space's surrogate.

Safety: a bearer token from ``TASKSPACE_TOKEN`` is required on every endpoint but ``/healthz``
when set, and must be set to listen on anything but loopback; it is compared in constant time and
never logged. Bodies, batches, texts and ``k`` are bounded (:class:`Limits`), every request has a
deadline, and errors are ``{"error": {"code": ..., "message": ...}}`` with a stable ``code``. CPU
work runs in worker threads (searches and embeddings in separate pools, so a large embedding does
not hold up searches), never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from aiohttp import web

from taskspace import __version__
from taskspace.embedding.task_embedding import TaskEmbedding
from taskspace.errors import (
    FingerprintMismatchError,
    InvalidInputError,
    TaskspaceError,
)
from taskspace.models.server import is_loopback
from taskspace.service.metrics import CONTENT_TYPE, Metrics
from taskspace.space.task_space import TaskSpace

__all__ = ["TOKEN_ENV", "ApiError", "Limits", "Service", "create_app", "serve", "serve_space", "service_key"]

log = logging.getLogger("taskspace.service.app")

#: The environment variable holding the bearer token.
TOKEN_ENV = "TASKSPACE_TOKEN"

_T = TypeVar("_T")
_OPEN_PATHS = frozenset({"/healthz"})
#: Bodies up to this size (a few ms to parse) are parsed on the event loop; larger ones in a worker.
_INLINE_JSON = 256 * 1024
_EMBED_FIELDS = frozenset({"pairs", "texts", "outputs", "text_pairs", "mode"})
_SEARCH_FIELDS = frozenset({"name", "vector", "embedding", "fingerprint", "k", "kind"})
#: Where an error response keeps its code for the metrics (typed keys exist from aiohttp 3.12 on).
_ERROR_CODE: Any = web.ResponseKey("error_code", str) if hasattr(web, "ResponseKey") else "error_code"


@dataclass(frozen=True)
class Limits:
    """What the service accepts; anything larger is refused with a 4xx error before any work.

    Attributes:
        max_body_bytes: request body size (413 ``body_too_large``).
        max_batch: pairs or texts per request, and candidates per select (413 ``batch_too_large``).
        max_text_chars: characters per text, second text or output text (413 ``text_too_long``).
        max_k: results per search (400 ``invalid_request``).
        timeout: seconds from a request's arrival to its response (503 ``timeout``); also how long
            shutdown waits for requests in flight.
        max_pending: worker jobs queued or running per pool; more get 503 ``overloaded`` at once.
        search_threads: threads for searches, selects and listing (``None``: one per core).
        embed_threads: threads for embeddings (each embedding already uses every core).
    """

    max_body_bytes: int = 16 * 2**20
    max_batch: int = 10_000
    max_text_chars: int = 20_000
    max_k: int = 1_000
    timeout: float = 30.0
    max_pending: int = 256
    search_threads: int | None = None
    embed_threads: int = 1

    def __post_init__(self) -> None:
        for name in (
            "max_body_bytes",
            "max_batch",
            "max_text_chars",
            "max_k",
            "max_pending",
            "embed_threads",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(f"Limits.{name} must be a positive int, got {value!r}")
        st = self.search_threads
        if st is not None and (isinstance(st, bool) or not isinstance(st, int) or st < 1):
            raise InvalidInputError(f"Limits.search_threads must be a positive int or None, got {st!r}")
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf"):
            raise InvalidInputError(f"Limits.timeout must be a positive number of seconds, got {t!r}")


class ApiError(Exception):
    """An error answered as ``{"error": {"code": code, "message": message}}`` with HTTP ``status``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        body = json.dumps({"error": {"code": self.code, "message": self.message}})
        response = web.json_response(text=body, status=self.status)
        if self.status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="taskspace"'
        response[_ERROR_CODE] = self.code
        return response


def _invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request", message)


# -- request parsing ----------------------------------------------------------------------------------


def _parse_json(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ApiError(400, "bad_json", f"the body is not valid JSON: {e}") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", f"the body must be a JSON object, got {type(body).__name__}")
    return body


def _only(body: dict[str, Any], allowed: frozenset[str], endpoint: str) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise _invalid(f"{endpoint} does not take the field(s) {unknown}; it takes {sorted(allowed)}")


def _one_of(body: dict[str, Any], names: tuple[str, ...], endpoint: str) -> str:
    given = [n for n in names if n in body]
    if len(given) != 1:
        choices = " or ".join(repr(n) for n in names)
        got = f"got {given}" if given else "got none"
        raise _invalid(f"{endpoint} needs exactly one of {choices}; {got}")
    return given[0]


def _string(body: dict[str, Any], name: str, *, default: str | None = None) -> str | None:
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise _invalid(f"{name!r} must be a string, got {type(value).__name__}")
    return value


def _choice(body: dict[str, Any], name: str, choices: tuple[Any, ...], default: Any) -> Any:
    value = body.get(name, default)
    if value not in choices:
        raise _invalid(f"{name!r} must be one of {list(choices)}, got {value!r}")
    return value


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(f"{name!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise _invalid(f"{name!r} must be in {lo}..{hi}, got {value}")
    return value


def _batch(value: Any, name: str, limits: Limits) -> list[Any]:
    if not isinstance(value, list):
        raise _invalid(f"{name!r} must be a list, got {type(value).__name__}")
    if not value:
        raise _invalid(f"{name!r} is empty")
    if len(value) > limits.max_batch:
        raise ApiError(
            413, "batch_too_large", f"{name!r} holds {len(value)} items; the limit is {limits.max_batch}"
        )
    return value


def _check_lengths(values: list[Any], name: str, limits: Limits) -> None:
    for i, v in enumerate(values):
        if isinstance(v, str) and len(v) > limits.max_text_chars:
            raise ApiError(
                413,
                "text_too_long",
                f"{name}[{i}] has {len(v)} characters; the limit is {limits.max_text_chars}",
            )


@dataclass(frozen=True)
class _Pairs:
    """Inputs of a task to embed, as the library takes them."""

    texts: list[Any]
    outputs: list[Any]
    text_pairs: list[Any] | None
    mode: str | None  # None: the space's mode ("label" for an empty space)


def _pairs(body: dict[str, Any], limits: Limits, endpoint: str) -> _Pairs:
    """``{"pairs": [[input, output], ...]}`` (input: a text or [text, text_pair]) or
    ``{"texts": [...], "outputs": [...], "text_pairs": [...]}``, plus an optional ``mode``."""
    mode = _choice(body, "mode", (None, "label", "text"), None)
    if "pairs" in body:
        for other in ("texts", "outputs", "text_pairs"):
            if other in body:
                raise _invalid(f"{endpoint}: give 'pairs' or 'texts' with 'outputs', not both ({other!r})")
        rows = _batch(body["pairs"], "pairs", limits)
        texts: list[Any] = []
        second: list[Any] = []
        outputs: list[Any] = []
        for i, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != 2:
                raise _invalid(f"pairs[{i}] must be [input, output], got {json.dumps(row)[:80]}")
            x, y = row
            if isinstance(x, list):
                if len(x) != 2:
                    raise _invalid(f"pairs[{i}][0] must be a text or [text, text_pair]")
                texts.append(x[0])
                second.append(x[1])
            else:
                texts.append(x)
            outputs.append(y)
        if second and len(second) != len(texts):
            raise _invalid("pairs mix single texts and [text, text_pair] inputs; use one form")
        text_pairs = second or None
    elif "texts" in body:
        texts = _batch(body["texts"], "texts", limits)
        if "outputs" not in body:
            raise _invalid(f"{endpoint}: 'texts' needs 'outputs' (labels, label distributions or texts)")
        outputs = _batch(body["outputs"], "outputs", limits)
        text_pairs = (
            None if body.get("text_pairs") is None else _batch(body["text_pairs"], "text_pairs", limits)
        )
    else:
        raise _invalid(f"{endpoint} needs 'pairs', or 'texts' with 'outputs'")
    _check_lengths(texts, "texts", limits)
    _check_lengths(outputs, "outputs", limits)
    if text_pairs is not None:
        _check_lengths(text_pairs, "text_pairs", limits)
    return _Pairs(texts, outputs, text_pairs, mode)


def _embedding(value: Any) -> TaskEmbedding:
    if not isinstance(value, dict):
        raise _invalid(f"'embedding' must be an object (as /v1/embed returns), got {type(value).__name__}")
    try:
        return TaskEmbedding.from_dict(value)
    except (TaskspaceError, TypeError) as e:
        raise _invalid(f"'embedding': {e}") from None


# -- work done in worker threads ----------------------------------------------------------------------


def _embed(
    space: TaskSpace, p: _Pairs, *, kind: str, name: str, meta: dict[str, Any] | None
) -> TaskEmbedding:
    """The library's embedding of the pairs; a degenerate task is answered, not warned about."""
    sur = space.surrogate
    mode = p.mode or space.mode or "label"
    stats = sur.stats(p.texts, p.outputs, text_pairs=p.text_pairs, mode=mode)  # type: ignore[arg-type]
    return sur.embed(stats, name=name, kind=kind, meta=meta)  # type: ignore[arg-type]


def _open_space(path: Path) -> tuple[TaskSpace, int, str | None]:
    """Open the space and build its search indexes (all kinds, and each kind) now rather than on the
    first request; returns the space, its size and its mode."""
    space = TaskSpace.open(path)
    try:
        n = len(space)
        for kind in (None, "dataset", "model") if n else ():
            space.nearest(np.ones(space.surrogate.dim, dtype=np.float32), k=1, kind=kind)
        return space, n, space.mode
    except BaseException:
        space.close()
        raise


def _add(space: TaskSpace, e: TaskEmbedding, *, replace: bool) -> int:
    if not replace and e.name in space:
        raise ApiError(409, "task_exists", f'{e.name!r} is already in the space; pass "replace": true')
    space.add(e, replace=replace)
    return len(space)


def _remove(space: TaskSpace, name: str) -> int:
    space.remove(name)
    return len(space)


def _tasks_page(space: TaskSpace, kind: str | None, offset: int, limit: int) -> bytes:
    names = space.names(kind)
    models = set(space.names("model")) if kind is None else set()
    page = names[offset : offset + limit]
    tasks = [{"name": n, "kind": kind or ("model" if n in models else "dataset")} for n in page]
    body = {
        "fingerprint": space.fingerprint,
        "surrogate": space.surrogate.config,
        "mode": space.mode,
        "dim": space.surrogate.dim,
        "total": len(names),
        "offset": offset,
        "limit": limit,
        "tasks": tasks,
    }
    return json.dumps(body).encode()


def _embedding_body(space: TaskSpace, p: _Pairs, *, kind: str, name: str) -> bytes:
    e = _embed(space, p, kind=kind, name=name, meta=None)
    return json.dumps({**e.to_dict(), "degenerate": e.degenerate}).encode()


def _ranked(pairs: list[tuple[str, float]], fingerprint: str) -> bytes:
    results = [{"name": n, "similarity": s} for n, s in pairs]
    return json.dumps({"fingerprint": fingerprint, "results": results}).encode()


# -- the service ------------------------------------------------------------------------------------


def _reload_done(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved here: reload() already logged it, and its caller may be gone


class _Served:
    """A space and how many requests use it; a replaced space closes when its last user is done."""

    __slots__ = ("retired", "space", "users")

    def __init__(self, space: TaskSpace) -> None:
        self.space = space
        self.users = 0
        self.retired = False


@contextmanager
def _deadline(seconds: float) -> Iterator[Callable[[], bool]]:
    """Cancel the current task after ``seconds``; yields a function telling whether it fired."""
    task = asyncio.current_task()
    assert task is not None
    fired = False

    def fire() -> None:
        nonlocal fired
        fired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, fire)
    try:
        yield lambda: fired
    finally:
        handle.cancel()


def _uncancel() -> None:
    """Forget our own deadline's cancellation (Python >= 3.11 counts them), so the response goes out."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


class Service:
    """The state of one running service: the served space, worker pools, metrics, settings.

    Made by :func:`create_app`; the space is opened when the application starts and closed when it
    stops. ``url`` is set by :func:`serve_space` once it listens.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, read_only: bool = False, limits: Limits | None = None
    ) -> None:
        if not isinstance(read_only, bool):
            raise TypeError(f"read_only must be a bool, got {type(read_only).__name__}")
        self.path = Path(path)
        self.read_only = read_only
        self.limits = limits or Limits()
        if not isinstance(self.limits, Limits):
            raise TypeError(f"limits must be taskspace.service.app.Limits, got {type(limits).__name__}")
        token = os.environ.get(TOKEN_ENV)
        if token is not None and not token.strip():
            raise InvalidInputError(f"{TOKEN_ENV} is set but empty; unset it or set a real token")
        self._token = None if token is None else token.encode("utf-8")
        self.url: str | None = None
        self.metrics = Metrics()
        self._served: _Served | None = None
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._pending: dict[str, int] = {}
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[TaskSpace]] = set()

    def __repr__(self) -> str:
        auth = "token" if self._token else "no token"
        return f"Service({str(self.path)!r}, read_only={self.read_only}, {auth}, url={self.url!r})"

    @property
    def requires_token(self) -> bool:
        return self._token is not None

    @property
    def space(self) -> TaskSpace:
        """The space being served now (replaced by :meth:`reload`)."""
        if self._served is None:
            raise InvalidInputError("the service has not started")
        return self._served.space

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the space (and build its index) in a worker thread."""
        cpus = os.cpu_count() or 1
        self._pools = {
            "search": ThreadPoolExecutor(self.limits.search_threads or cpus, thread_name_prefix="ts-search"),
            "embed": ThreadPoolExecutor(self.limits.embed_threads, thread_name_prefix="ts-embed"),
            "admin": ThreadPoolExecutor(1, thread_name_prefix="ts-admin"),
        }
        self._pending = dict.fromkeys(self._pools, 0)
        try:
            opened = await asyncio.get_running_loop().run_in_executor(
                self._pools["admin"], _open_space, self.path
            )
        except BaseException:
            await self.stop()
            raise
        self._serve(opened[0], opened[2])
        log.info("serving %s: %d tasks, surrogate %s", self.path, opened[1], opened[0].fingerprint)

    async def stop(self) -> None:
        """Wait for reloads and worker jobs, then close the space."""
        for task in list(self._reloads):
            with suppress(Exception, asyncio.CancelledError):
                await task
        pools, self._pools = self._pools, {}
        for pool in pools.values():  # runs what is queued, e.g. closing a replaced space
            await asyncio.to_thread(pool.shutdown, wait=True)
        if self._served is not None:
            self._served.space.close()
            self._served = None

    def _serve(self, space: TaskSpace, mode: str | None) -> None:
        old, self._served = self._served, _Served(space)
        self.metrics.info = {
            "version": __version__,
            "fingerprint": space.fingerprint,
            "mode": mode or "",
            "read_only": str(self.read_only).lower(),
        }
        if old is not None:
            old.retired = True
            if old.users == 0:
                self._close_later(old.space)

    def _close_later(self, space: TaskSpace) -> None:
        # Closing waits for the space's lock, which a timed-out job may still hold: never on the loop.
        pool = self._pools.get("admin")
        if pool is None:
            space.close()
        else:
            pool.submit(space.close)

    async def reload(self) -> TaskSpace:
        """Open the space file again and serve it from then on; requests in flight finish on the old one.

        The file may now hold another surrogate. If it cannot be opened, the old space stays served
        and :class:`ApiError` (500 ``reload_failed``) is raised. A reload whose caller gives up
        (a request timeout) still completes.
        """
        task = asyncio.get_running_loop().create_task(self._reload())
        self._reloads.add(task)
        task.add_done_callback(_reload_done)
        task.add_done_callback(self._reloads.discard)
        return await asyncio.shield(task)

    async def _reload(self) -> TaskSpace:
        async with self._reload_lock:  # one at a time, in order: the last one reads the newest file
            loop = asyncio.get_running_loop()
            try:
                opened = await loop.run_in_executor(self._pools["admin"], _open_space, self.path)
            except (TaskspaceError, OSError) as e:
                self.metrics.event("reload", "failed")
                log.error("reload of %s failed, still serving the previous space: %s", self.path, e)
                raise ApiError(
                    500, "reload_failed", f"{self.path}: {e}; the previous space is still served"
                ) from None
            self._serve(opened[0], opened[2])
            self.metrics.event("reload", "ok")
            log.info("reloaded %s: %d tasks, surrogate %s", self.path, opened[1], opened[0].fingerprint)
            return opened[0]

    @asynccontextmanager
    async def _use(self) -> AsyncIterator[TaskSpace]:
        served = self._served
        if served is None:
            raise ApiError(503, "unavailable", "the service is not serving a space")
        served.users += 1
        try:
            yield served.space
        finally:
            served.users -= 1
            if served.retired and served.users == 0:
                self._close_later(served.space)

    async def _run(self, pool: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        """Run a library call in a worker thread; its input errors become 4xx ApiErrors."""
        if self._pending[pool] >= self.limits.max_pending:
            raise ApiError(503, "overloaded", f"{self._pending[pool]} {pool} jobs are waiting; retry later")
        executor = self._pools[pool]
        self._pending[pool] += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                executor, functools.partial(fn, *args, **kwargs)
            )
        except KeyError as e:
            raise ApiError(404, "unknown_task", str(e.args[0]) if e.args else "no such task") from None
        except FingerprintMismatchError as e:
            raise ApiError(409, "fingerprint_mismatch", str(e)) from None
        except (TaskspaceError, TypeError) as e:
            raise _invalid(str(e)) from None
        finally:
            self._pending[pool] -= 1

    # -- middleware -------------------------------------------------------------------------------
    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        start = time.perf_counter()
        route = request.match_info.route.resource
        endpoint = route.canonical if route is not None else "unmatched"
        self.metrics.in_flight += 1
        try:
            with _deadline(self.limits.timeout) as fired:
                try:
                    self._authorize(request)
                    response = await handler(request)
                except ApiError as e:
                    response = e.response()
                except web.HTTPException as e:
                    response = _http_error(e, request, self.limits).response()
                except asyncio.CancelledError:
                    if not fired():
                        raise
                    _uncancel()
                    response = ApiError(
                        503, "timeout", f"the request took longer than {self.limits.timeout:g} s"
                    ).response()
                except Exception:
                    log.exception("internal error in %s %s", request.method, endpoint)
                    response = ApiError(500, "internal", "internal error; see the server's log").response()
        finally:
            self.metrics.in_flight -= 1
        self.metrics.observe(endpoint, request.method, response.status, time.perf_counter() - start)
        if response.status >= 400:
            self.metrics.error(endpoint, response.get(_ERROR_CODE, f"http_{response.status}"))
        return response

    def _authorize(self, request: web.Request) -> None:
        if self._token is None or request.path in _OPEN_PATHS:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if not header:
            raise ApiError(401, "unauthorized", "this service needs 'Authorization: Bearer <token>'")
        # Compare even on a wrong scheme, so timing does not tell which part was wrong.
        ok = hmac.compare_digest(given.strip().encode("utf-8", "replace"), self._token)
        if scheme.lower() != "bearer" or not ok:
            raise ApiError(401, "unauthorized", "the bearer token is not valid")

    async def _json(
        self, request: web.Request, allowed: frozenset[str], endpoint: str, pool: str = "embed"
    ) -> dict[str, Any]:
        """The body as a JSON object with only ``allowed`` fields; large bodies are parsed in ``pool``."""
        limit = self.limits.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(
                413, "body_too_large", f"the body has {request.content_length} bytes; the limit is {limit}"
            )
        raw = await request.read()  # aiohttp stops reading past client_max_size (HTTP 413)
        if len(raw) <= _INLINE_JSON:
            body = _parse_json(raw)
        else:
            body = await self._run(pool, _parse_json, raw)
        _only(body, allowed, endpoint)
        return body

    # -- handlers ---------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics_text(self, request: web.Request) -> web.Response:
        async with self._use() as space:
            n_tasks = await self._run("search", len, space)
        gauges = {
            "taskspace_tasks": ("Task embeddings in the served space.", float(n_tasks)),
            "taskspace_jobs_pending": (
                "Worker jobs queued or running, all pools.",
                float(sum(self._pending.values())),
            ),
        }
        return web.Response(body=self.metrics.render(gauges).encode(), headers={"Content-Type": CONTENT_TYPE})

    async def embed(self, request: web.Request) -> web.Response:
        fields = _EMBED_FIELDS | {"kind", "name"}
        body = await self._json(request, fields, "/v1/embed")
        kind = _choice(body, "kind", ("dataset", "model"), "dataset")
        name = _string(body, "name", default="") or ""
        pairs = _pairs(body, self.limits, "/v1/embed")
        async with self._use() as space:
            answer = await self._run("embed", _embedding_body, space, pairs, kind=kind, name=name)
        return _raw_json(answer)

    async def search(self, request: web.Request) -> web.Response:
        body = await self._json(request, _SEARCH_FIELDS, "/v1/search", "search")
        k = _int(body.get("k", 5), "k", 1, self.limits.max_k)
        kind = _choice(body, "kind", (None, "dataset", "model"), None)
        which = _one_of(body, ("name", "vector", "embedding"), "/v1/search")
        if "fingerprint" in body and which != "vector":
            raise _invalid("'fingerprint' goes with 'vector' (a name or an embedding carries its own)")
        fingerprint = _string(body, "fingerprint")
        query: Any = body[which]
        if which == "name" and not isinstance(query, str):
            raise _invalid(f"'name' must be a string, got {type(query).__name__}")
        if which == "vector" and not isinstance(query, list):
            raise _invalid(f"'vector' must be a list of numbers, got {type(query).__name__}")
        if which == "embedding":
            query = _embedding(query)
        async with self._use() as space:
            if fingerprint is not None and fingerprint != space.fingerprint:
                raise ApiError(
                    409,
                    "fingerprint_mismatch",
                    f"the vector comes from surrogate {fingerprint}; this space holds surrogate {space.fingerprint}",
                )
            found = await self._run("search", space.nearest, query, k, kind=kind)
            return _raw_json(_ranked(found, space.fingerprint))

    async def select(self, request: web.Request) -> web.Response:
        body = await self._json(request, _EMBED_FIELDS | {"dataset", "embedding", "candidates"}, "/v1/select")
        candidates = body.get("candidates")
        if candidates is not None:
            candidates = _batch(candidates, "candidates", self.limits)
        which = _one_of(body, ("dataset", "embedding", "pairs", "texts"), "/v1/select")
        dataset: Any = None
        if which in ("dataset", "embedding"):
            extra = sorted(set(body) & _EMBED_FIELDS)
            if extra:
                raise _invalid(f"/v1/select: {extra} go with 'pairs' or 'texts', not with {which!r}")
            dataset = _string(body, "dataset") if which == "dataset" else _embedding(body["embedding"])
        else:
            pairs = _pairs(body, self.limits, "/v1/select")
        async with self._use() as space:
            if dataset is None:
                dataset = await self._run("embed", _embed, space, pairs, kind="dataset", name="", meta=None)
            ranked = await self._run("search", space.select, dataset, candidates)
            return _raw_json(_ranked(ranked, space.fingerprint))

    async def list_tasks(self, request: web.Request) -> web.Response:
        q = request.query
        unknown = sorted(set(q) - {"kind", "offset", "limit"})
        if unknown:
            raise _invalid(f"GET /v1/tasks takes the query parameters kind, offset, limit; not {unknown}")
        kind = _choice(dict(q), "kind", (None, "dataset", "model"), None)
        offset = _int(_query_int(q, "offset", 0), "offset", 0, 2**62)
        limit = _int(_query_int(q, "limit", 1000), "limit", 1, 100_000)
        async with self._use() as space:
            return _raw_json(await self._run("search", _tasks_page, space, kind, offset, limit))

    async def add_task(self, request: web.Request) -> web.Response:
        self._writable()
        fields = _EMBED_FIELDS | {"embedding", "name", "kind", "meta", "replace"}
        body = await self._json(request, fields, "POST /v1/tasks")
        replace = body.get("replace", False)
        if not isinstance(replace, bool):
            raise _invalid(f"'replace' must be true or false, got {replace!r}")
        async with self._use() as space:
            if "embedding" in body:
                clash = sorted(set(body) & (_EMBED_FIELDS | {"name", "kind", "meta"}))
                if clash:
                    raise _invalid(f"'embedding' carries its own name, kind and meta; drop {clash}")
                e = _embedding(body["embedding"])
            else:
                name = _string(body, "name")
                if not name:
                    raise _invalid("POST /v1/tasks needs a non-empty 'name'")
                _check_lengths([name], "name", self.limits)
                kind = _choice(body, "kind", ("dataset", "model"), "dataset")
                meta = body.get("meta", {})
                if not isinstance(meta, dict):
                    raise _invalid(f"'meta' must be an object, got {type(meta).__name__}")
                pairs = _pairs(body, self.limits, "POST /v1/tasks")
                e = await self._run("embed", _embed, space, pairs, kind=kind, name=name, meta=meta)
            total = await self._run("search", _add, space, e, replace=replace)
        out = {
            "name": e.name,
            "kind": e.kind,
            "fingerprint": e.fingerprint,
            "degenerate": e.degenerate,
            "total": total,
        }
        return web.json_response(out, status=201)

    async def delete_task(self, request: web.Request) -> web.Response:
        self._writable()
        name = request.match_info["name"]
        async with self._use() as space:
            total = await self._run("search", _remove, space, name)
        return web.json_response({"deleted": name, "total": total})

    async def reload_handler(self, request: web.Request) -> web.Response:
        if request.can_read_body:  # no fields, but an empty object is fine
            await self._json(request, frozenset(), "/v1/reload")
        space = await self.reload()
        total = await self._run("search", len, space)
        return web.json_response({"status": "reloaded", "fingerprint": space.fingerprint, "total": total})

    def _writable(self) -> None:
        if self.read_only:
            raise ApiError(403, "read_only", "the service is read-only (started with --read-only)")


def _query_int(q: Any, name: str, default: int) -> Any:
    value = q.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _invalid(f"query parameter {name!r} must be an integer, got {value!r}") from None


def _raw_json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def _http_error(e: web.HTTPException, request: web.Request, limits: Limits) -> ApiError:
    code = _HTTP_CODES.get(e.status, f"http_{e.status}")
    if e.status == 404:
        message = f"no endpoint {request.method} {request.path}"
    elif e.status == 405:
        message = f"{request.path} does not take {request.method}"
    elif e.status == 413:
        message = f"the body exceeds the limit of {limits.max_body_bytes} bytes"
    else:
        message = e.reason
    return ApiError(e.status, code, message)


_SERVICE = web.AppKey("service", Service)


def create_app(
    path: str | os.PathLike[str], *, read_only: bool = False, limits: Limits | None = None
) -> web.Application:
    """The aiohttp application serving the space file ``path`` (see the module docs for endpoints).

    The bearer token is read from ``TASKSPACE_TOKEN`` now (unset: no authentication). The space is
    opened when the application starts; ``app[taskspace.service.app.service_key()]`` is its :class:`Service`.
    """
    service = Service(path, read_only=read_only, limits=limits)
    app = web.Application(middlewares=[service._middleware], client_max_size=service.limits.max_body_bytes)
    app[_SERVICE] = service
    r = app.router
    r.add_get("/healthz", service.healthz)
    r.add_get("/metrics", service.metrics_text)
    r.add_post("/v1/embed", service.embed)
    r.add_post("/v1/search", service.search)
    r.add_post("/v1/select", service.select)
    r.add_get("/v1/tasks", service.list_tasks)
    r.add_post("/v1/tasks", service.add_task)
    r.add_delete("/v1/tasks/{name}", service.delete_task)
    r.add_post("/v1/reload", service.reload_handler)

    async def on_startup(app: web.Application) -> None:
        await service.start()

    async def on_cleanup(app: web.Application) -> None:
        await service.stop()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


def service_key() -> web.AppKey[Service]:
    """The key of the :class:`Service` in an application made by :func:`create_app`."""
    return _SERVICE


def _check_listen(host: Any, port: Any) -> None:
    if not isinstance(host, str) or not host:
        raise InvalidInputError(f"host must be a non-empty str, got {host!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidInputError(f"port must be an integer in 0..65535 (0 = any free port), got {port!r}")
    token = os.environ.get(TOKEN_ENV)
    if not is_loopback(host) and not (token and token.strip()):
        raise InvalidInputError(
            f"refusing to listen on {host!r} without authentication: set {TOKEN_ENV} to a secret token "
            "(clients send 'Authorization: Bearer <token>'), or listen on 127.0.0.1"
        )


@asynccontextmanager
async def serve_space(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    read_only: bool = False,
    limits: Limits | None = None,
    access_log: bool = False,
) -> AsyncIterator[Service]:
    """Serve the space file while the ``async with`` block runs; yields the :class:`Service`
    (``service.url`` is ``http://HOST:PORT``). ``port=0`` picks a free port.

    Listening starts only once the space is open and indexed. A host other than loopback needs
    ``TASKSPACE_TOKEN`` (otherwise :class:`InvalidInputError`). On exit the service stops accepting
    connections and waits up to ``limits.timeout`` seconds for requests in flight.

    Example:
        >>> import asyncio, os, tempfile, aiohttp, taskspace as ts
        >>> from taskspace.service.app import serve_space
        >>> path = os.path.join(tempfile.mkdtemp(), "space.sqlite")
        >>> sur = ts.Surrogate(features=32, dim=64)
        >>> with ts.TaskSpace(sur, path) as space:
        ...     space.add(sur.dataset_embedding(["good", "bad"], ["+", "-"], name="reviews"))
        ...     space.add(sur.model_embedding(["nice", "awful"], ["y", "n"], name="clf"))
        >>> async def ask():
        ...     async with serve_space(path) as service, aiohttp.ClientSession() as http:
        ...         async with http.post(f"{service.url}/v1/search", json={"name": "reviews", "k": 1}) as r:
        ...             return (await r.json())["results"][0]["name"]
        >>> asyncio.run(ask())
        'clf'
    """
    _check_listen(host, port)
    limits = limits or Limits()
    app = create_app(path, read_only=read_only, limits=limits)
    runner = web.AppRunner(
        app,
        access_log=logging.getLogger("taskspace.service.app.access") if access_log else None,
        access_log_format='%a "%r" %s %b %Tf',  # never headers: the token must not reach a log
        shutdown_timeout=limits.timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=1024)
        await site.start()
        service = app[_SERVICE]
        bound = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        service.url = f"http://{shown}:{bound}"
        yield service
    finally:
        await runner.cleanup()


def serve(
    path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    read_only: bool = False,
    limits: Limits | None = None,
    access_log: bool = False,
) -> str:
    """Serve until SIGTERM or SIGINT (graceful: requests in flight finish); SIGHUP reloads the file.

    Prints one line with the URL once listening. Returns the name of the signal that stopped it.
    """
    _check_listen(host, port)

    async def run() -> str:
        loop = asyncio.get_running_loop()
        stop: asyncio.Future[str] = loop.create_future()
        reloads: set[asyncio.Task[Any]] = set()

        def stop_on(name: str) -> None:
            if not stop.done():
                stop.set_result(name)

        async with serve_space(
            path, host=host, port=port, read_only=read_only, limits=limits, access_log=access_log
        ) as service:

            async def reload() -> None:
                with suppress(ApiError):  # logged by reload(); the old space stays served
                    await service.reload()

            def on_hup() -> None:
                task = loop.create_task(reload())
                reloads.add(task)
                task.add_done_callback(reloads.discard)

            for sig, handler in (
                (signal.SIGTERM, functools.partial(stop_on, "SIGTERM")),
                (signal.SIGINT, functools.partial(stop_on, "SIGINT")),
                (signal.SIGHUP, on_hup),
            ):
                with suppress(NotImplementedError, RuntimeError, AttributeError):  # Windows, not main thread
                    loop.add_signal_handler(sig, handler)
            space = service.space
            n_tasks = await service._run("search", len, space)
            state = "read-only" if read_only else "read-write"
            auth = "token required" if service.requires_token else "no token"
            print(
                f"taskspace serve: {n_tasks} tasks from {service.path} (surrogate {space.fingerprint}, "
                f"{service.metrics.info['mode'] or 'empty'}, {state}, {auth}) at {service.url}",
                flush=True,
            )
            how = await stop
            log.info("%s: stopping; waiting for requests in flight", how)
        for task in reloads:
            task.cancel()
        return how

    return asyncio.run(run())
